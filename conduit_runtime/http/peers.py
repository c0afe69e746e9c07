"""What the worker processes of one server (`server.workers` > 1) know of each other.

The supervisor (supervisor.py) makes a folder and names it in CONDUIT_WORKERS_DIR
before it starts them. A worker marks itself ready with a file `ready-<pid>` there,
and takes it away when it drains or stops; the supervisor takes away the file of a
worker that died. So /ready, whichever worker answers it, is 200 while at least one
worker is ready (http/readiness.py). (prometheus-client's files for /metrics live in
a folder beside it.)
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_ENV = "CONDUIT_WORKERS_DIR"


class Peers:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.mine = folder / f"ready-{os.getpid()}"

    @classmethod
    def from_env(cls) -> Peers | None:
        folder = os.environ.get(DIR_ENV)
        return cls(Path(folder)) if folder else None

    def ready(self) -> None:
        self.mine.touch()

    def leave(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.mine.unlink()

    def any_ready(self) -> bool:
        return next(self.folder.glob("ready-*"), None) is not None


def forget(folder: Path, pid: int) -> None:
    """A worker died: it is not ready (the supervisor calls this)."""
    with contextlib.suppress(FileNotFoundError):
        (folder / f"ready-{pid}").unlink()

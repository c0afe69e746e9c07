"""What the worker processes of one server (`server.workers` > 1) know of each other.

The supervisor (server.py) makes a folder and names it in CONDUIT_WORKERS_DIR,
with the number of workers in CONDUIT_WORKERS, before it starts them. A worker
marks itself ready with a file `ready-<pid>` there, and takes it away when it
drains or stops; the supervisor takes away the file of a worker that died. So
/ready, whichever worker answers it, is 200 only when every worker is ready.
(prometheus-client's files for /metrics live in a folder beside it.)
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_ENV = "CONDUIT_WORKERS_DIR"
COUNT_ENV = "CONDUIT_WORKERS"


class Peers:
    def __init__(self, folder: Path, count: int) -> None:
        self.folder = folder
        self.count = count
        self.mine = folder / f"ready-{os.getpid()}"

    @classmethod
    def from_env(cls) -> Peers | None:
        folder = os.environ.get(DIR_ENV)
        return cls(Path(folder), int(os.environ.get(COUNT_ENV, "1"))) if folder else None

    def ready(self) -> None:
        self.mine.touch()

    def leave(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.mine.unlink()

    def ready_count(self) -> int:
        return sum(1 for _ in self.folder.glob("ready-*"))

    def all_ready(self) -> bool:
        return self.ready_count() >= self.count

    def problem(self) -> str:
        return f"{self.ready_count()} of {self.count} workers are ready"


def forget(folder: Path, pid: int) -> None:
    """A worker died: it is not ready (the supervisor calls this)."""
    with contextlib.suppress(FileNotFoundError):
        (folder / f"ready-{pid}").unlink()

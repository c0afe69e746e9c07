"""`python -m conduit_runtime.process.worker SPEC_FILE FD [--debug] [--load-first]`: one of several
worker processes, started by the supervisor (supervisor.py) on its listening socket."""

from __future__ import annotations

import os
import pickle
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from ..http.app import load_quietly
from ..spec import ServerSpec
from .server import draining_server


def main(argv: list[str]) -> None:
    spec = pickle.loads(Path(argv[0]).read_bytes())  # written by our own supervisor, in its private folder
    serve_worker(spec, int(argv[1]), "--debug" in argv[2:], "--load-first" in argv[2:])


def serve_worker(spec: ServerSpec, fd: int, debug: bool, load_first: bool) -> None:
    """One worker: the app on the supervisor's listening socket. One that replaces a
    worker that died loads its model first: accepting while it loads, it would answer
    503 to predictions the other workers could take (the first ones accept at once, so
    that /health answers during start-up). One whose load failed (logged) exits, to be
    started again after the supervisor's back-off, rather than answer 503 beside the
    others while /ready is 200."""
    listener = socket.socket(fileno=fd)
    server = draining_server(spec, "", 0, debug)
    watch_parent(os.getppid())
    if load_first:
        load_quietly(server.app.service, server.app.peers)
        if server.app.service.failed:
            sys.exit(1)
    server.run(sockets=[listener])


def watch_parent(parent: int) -> None:
    """A worker whose supervisor is gone (killed) drains and exits, rather than serve orphaned."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="conduit-parent", daemon=True).start()


if __name__ == "__main__":
    main(sys.argv[1:])

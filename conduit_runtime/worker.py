"""`python -m conduit_runtime.worker SPEC_FILE FD [--debug] [--load-first]`: one of several worker
processes, started by the supervisor in server.py on its listening socket."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from .server import serve_worker


def main(argv: list[str]) -> None:
    spec = pickle.loads(Path(argv[0]).read_bytes())  # written by our own supervisor, in its private folder
    serve_worker(spec, int(argv[1]), "--debug" in argv[2:], "--load-first" in argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])

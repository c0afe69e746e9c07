"""`python -m conduit_runtime.weights fetch --into DIR`: the weights pinned by CONDUIT_WEIGHTS,
pulled and verified into DIR (a Kubernetes init container's emptyDir, which the server then
reads as CONDUIT_WEIGHTS_DIR). Exit 0 with one `weights_fetched` line on stdout, or 1 with one
JSON error line on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

from ..log import log
from . import WeightsError


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail({"error": f"{message} (usage: python -m conduit_runtime.weights fetch --into DIR)"})


def fail(record: dict[str, object]) -> NoReturn:
    sys.stderr.write(json.dumps({"event": "weights_fetch_failed", **record}, separators=(",", ":")) + "\n")
    sys.exit(1)


def main(argv: list[str]) -> None:
    parser = Parser(prog="python -m conduit_runtime.weights")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="pull CONDUIT_WEIGHTS into DIR, verified")
    fetch.add_argument("--into", required=True, type=Path, metavar="DIR")
    args = parser.parse_args(argv)
    from .startup import fetch_into

    try:
        fetched = fetch_into(args.into)
    except WeightsError as exc:
        fail(exc.record())
    except Exception as exc:  # a bug of ours: still one line
        fail({"error": f"{type(exc).__name__}: {exc}"[:1000], "artifact": str(args.into)})
    log({"event": "weights_fetched", "artifact": fetched.artifact, "source": fetched.source,
         "bytes": fetched.bytes, "seconds": fetched.seconds})


if __name__ == "__main__":
    main(sys.argv[1:])

"""`conduit …`: one module per command. Each handler parses nothing, calls one
library function that returns data, prints it, and returns the exit status.

`main()` alone turns failures into one `error: …` line (a config's problems as
`conduit.yaml:LINE:COL: …` lines): exit 1 for a failed job, 2 for bad usage or
config, 130 for Ctrl-C. `--debug`, anywhere on the command line, adds the
traceback (and `conduit serve --debug` puts exception details into 500 bodies).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence

from ..errors import ConduitError, ConfigError
from . import build, deploy, init, lock, predict, push, render, schema, serve, status, test, validate
from .parser import Parser, add_common

COMMANDS = (init, validate, schema, lock, render, build, test, push, deploy, status, serve, predict)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="conduit", description="Build, test and ship model-serving containers.")
    add_common(parser, None)
    parser.add_argument("--debug", action="store_true", help="show tracebacks (anywhere on the command line)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in words
    try:
        args = build_parser().parse_args([word for word in words if word != "--debug"])
    except SystemExit as exit_:  # argparse: usage errors (2), --help (0)
        return exit_.code if isinstance(exit_.code, int) else 2
    args.json = bool(getattr(args, "json", False))
    args.debug = debug
    try:
        return int(args.handler(args))
    except ConduitError as error:
        show_traceback(debug)
        report(error, args.json)
        return error.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a file or a socket the user named: their problem to fix, not a bug
        show_traceback(debug)
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error:{where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        show_traceback(debug)
        print(f"error: unexpected {type(exc).__name__}: {exc}" + ("" if debug else " (run with --debug for the traceback)"),
              file=sys.stderr)
        return 1


def show_traceback(debug: bool) -> None:
    if debug:
        traceback.print_exc()


def report(error: ConduitError, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"ok": False, "error": type(error).__name__, "problems": error.lines()}, indent=2))
    elif isinstance(error, ConfigError):
        for line in error.lines():  # already `file:line:col: key: text`, like a compiler's
            print(line, file=sys.stderr)
    else:
        for line in error.lines():
            print(f"error: {line}", file=sys.stderr)


def run() -> None:
    sys.exit(main())


__all__ = ["main", "run"]

"""The argument parser's shared parts: -f/--file and --json before or after the command."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace], int]
Commands = Any  # argparse's _SubParsersAction, which it does not export


def command(commands: Commands, name: str, handler: Handler, help_text: str,
            predict_flags: bool = False) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=help_text)
    add_common(sub, argparse.SUPPRESS, predict_flags)  # also accepted after the command
    sub.set_defaults(handler=handler)
    return sub


def add_common(parser: argparse.ArgumentParser, default: Any, predict_flags: bool = False) -> None:
    """-f/--file PATH and --json everywhere, except that `predict` uses --file and
    --json for the request (DESIGN §5): there the config is -f/--config."""
    config_flags = ("-f", "--config") if predict_flags else ("-f", "--file")
    parser.add_argument(*config_flags, dest="file", default=default, metavar="PATH", help="conduit.yaml (default: ./conduit.yaml)")
    if not predict_flags:
        parser.add_argument("--json", action="store_true", default=default, help="machine-readable output")

"""The argument parser's shared parts: -f/--file and --json before or after the command,
the checked types of numeric flags and references, and usage errors as one line (exit 2)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn

Handler = Callable[[argparse.Namespace], int]
Commands = Any  # argparse's _SubParsersAction, which it does not export


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line that says where the usage is (exit 2)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (usage: {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def port(text: str) -> int:
    number = whole(text)
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port: give 1 to 65535")
    return number


def repeats(text: str) -> int:
    """How many times to do something optional: 0 (not at all) or more."""
    number = whole(text)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number of times: give 0 or more")
    return number


def seconds(text: str) -> float:
    """A duration: a finite number of seconds above 0."""
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a duration: give a number of seconds above 0")
    return number


def whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def weights_reference(text: str) -> str:
    """A weights artifact pinned by digest, as `conduit push` prints it: <registry>/<repository>@sha256:<hex>."""
    from ..deploy.kubernetes import weights_problem  # the one definition, shared with the Python API

    problem = weights_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r} {problem}")
    return text


# What numeric flags may use: each refuses what cannot work (tests/unit/test_cli_values.py holds
# every command to it).
NUMERIC_TYPES = (port, repeats, seconds)
# Every checked type a flag may use instead of a plain string.
CHECKED_TYPES = (*NUMERIC_TYPES, weights_reference)


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

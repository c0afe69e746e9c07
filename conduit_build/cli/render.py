"""`conduit render [-o DIR]`: the build context and its content hash."""

from __future__ import annotations

import argparse
from pathlib import Path

from .output import emit, project
from .parser import Commands, command


def run(args: argparse.Namespace) -> int:
    from ..image.context import render

    context = render(project(args))
    if args.out:
        context.write(Path(args.out))
    emit(args, {"hash": context.hash, "out": args.out, "files": sorted(context.files)}, context.hash)
    return 0


def add(commands: Commands) -> None:
    sub = command(commands, "render", run, "write the build context and print its content hash")
    sub.add_argument("-o", "--out", metavar="DIR", help="write the context here (default: only print the hash)")

"""`conduit init [--type T] [DIR]`: a working project skeleton."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config.schema import MODEL_TYPES
from .output import emit
from .parser import Commands, command


def run(args: argparse.Namespace) -> int:
    from ..config.scaffold import init  # Jinja: only for this command (every command starts faster)

    written = init(Path(args.dir), args.type, force=args.force)
    emit(args, {"written": [str(p) for p in written]},
         "\n".join(f"wrote {p}" for p in written) + f"\nnext: cd {args.dir} && conduit validate && conduit serve")
    return 0


def add(commands: Commands) -> None:
    sub = command(commands, "init", run, "write a working conduit.yaml and hooks skeleton")
    sub.add_argument("--type", default="sklearn_classifier", choices=MODEL_TYPES, help="model type")
    sub.add_argument("--force", action="store_true", help="overwrite existing files")
    sub.add_argument("dir", nargs="?", default=".", help="project folder (default: .)")

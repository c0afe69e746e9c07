"""`conduit lock [--upgrade [PACKAGE ...]] [--from-image REF]`: write conduit.lock."""

from __future__ import annotations

import argparse

from .output import emit, project
from .parser import Commands, command


def run(args: argparse.Namespace) -> int:
    from ..image.lock import lock_from_image, lock_project

    if args.from_image:
        locked = lock_from_image(project(args), args.from_image)
    else:
        locked = lock_project(project(args), args.upgrade)
    pins = locked.lock.pins()
    target = f"python {locked.lock.python}, {locked.lock.hardware}"
    emit(args, {"path": str(locked.path), "packages": {p.name: p.version for p in pins}, "changed": locked.changed,
                "target": locked.lock.fields}, f"{locked.path}: {len(pins)} packages for {target}"
         + ("" if locked.changed else " (unchanged)"))
    return 0


def add(commands: Commands) -> None:
    sub = command(commands, "lock", run, "resolve every Python package of the image, with hashes, into conduit.lock")
    group = sub.add_mutually_exclusive_group()
    group.add_argument("--upgrade", nargs="*", metavar="PACKAGE",
                       help="allow newer versions: of every package, or of those named (default: keep the lock's pins)")
    group.add_argument("--from-image", metavar="REF", help="write the lock from what the image REF installed")

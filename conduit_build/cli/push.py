"""`conduit push [--tag T]`: to image.repository; prints repository@sha256:…"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from .output import emit, project
from .parser import Commands, command


def run(args: argparse.Namespace) -> int:
    from ..image.build import push_image

    pushed = push_image(project(args), args.tag)
    emit(args, asdict(pushed), pushed.reference)
    return 0


def add(commands: Commands) -> None:
    sub = command(commands, "push", run, "push the image to image.repository and print its digest")
    sub.add_argument("--tag", help="the image to push (default: the one built from the current context)")

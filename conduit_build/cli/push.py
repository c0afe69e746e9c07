"""`conduit push [--tag T]`: to image.repository; prints repository@sha256:… (and, with
image.weights: separate, the weights artifact's weights-repository@sha256:… on a second line)."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from .output import emit, project
from .parser import Commands, command


def run(args: argparse.Namespace) -> int:
    from ..image.build import push_image

    pushed = push_image(project(args), args.tag)
    text = pushed.reference
    if pushed.weights is not None:
        weights = pushed.weights
        text += (f"\n{weights.pinned} (weights {weights.reference}: {weights.bytes_sent} bytes sent, "
                 f"{weights.layers_sent} layers sent, {weights.layers_skipped} already there)")
    payload = asdict(pushed)
    if pushed.weights is None:  # a bundled project's output stays as it was
        del payload["weights"]
    emit(args, payload, text)
    return 0


def add(commands: Commands) -> None:
    sub = command(commands, "push", run, "push the image to image.repository and print its digest")
    sub.add_argument("--tag", help="the image to push (default: the one built from the current context)")

"""`conduit build [--tag T] [--no-cache] [--locked]`: the image, with its progress streamed to stderr;
with image.weights: separate, the weights artifact beside it (both named in the output)."""

from __future__ import annotations

import argparse

from .output import emit, project
from .parser import Commands, command
from .progress import printer


def run(args: argparse.Namespace) -> int:
    from ..image.build import build_image, weights_summary

    built = build_image(project(args), args.tag, args.no_cache, printer(args.json, args.quiet), args.locked)
    if built.cached:
        message = f"{built.tag}: up to date (an image with context hash {built.context_hash[:12]} exists)"
    else:
        message = f"built {built.tag} ({built.image_id[:19]})"
    payload = {"tag": built.tag, "image_id": built.image_id, "context_hash": built.context_hash,
               "cached": built.cached, "event": "built"}
    if built.weights is not None:
        weights = built.weights
        payload["weights"] = weights_summary(weights)
        message += f"\nweights {weights.reference} ({weights.digest[:19]}…, {len(weights.layers)} layers, {weights.bytes} bytes)"
    emit(args, payload, message)
    return 0


def add(commands: Commands) -> None:
    sub = command(commands, "build", run, "build the image through the Docker SDK, streaming progress")
    sub.add_argument("--tag", help="image tag (default: <image.repository or name>:<context hash[:12]>)")
    sub.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    sub.add_argument("--locked", action="store_true",
                     help="install conduit.lock as it is: refuse (exit 2) when it is missing or stale")
    sub.add_argument("-q", "--quiet", action="store_true", help="print only the result")

"""`conduit status`: what runs where: image digest, ready, uptime."""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict

from .output import emit, project
from .parser import Commands, command


def run(args: argparse.Namespace) -> int:
    from ..deploy.docker import status

    loaded = project(args)
    rows = status(loaded)
    host = loaded.config.deploy.docker.host or os.environ.get("DOCKER_HOST") or "the local Docker engine"
    lines = [f"on {host}:", f"{'NAME':32} {'STATE':9} {'READY':5} {'UPTIME':>8}  IMAGE"] + [
        f"{r.name:32} {r.state:9} {'yes' if r.ready else 'no':5} {int(r.uptime_s):>7}s  {r.image}" for r in rows
    ]
    emit(args, [asdict(r) for r in rows], "\n".join(lines) if rows else f"nothing of {loaded.name} runs on {host}")
    return 0


def add(commands: Commands) -> None:
    command(commands, "status", run, "what runs where: image digest, ready, uptime")

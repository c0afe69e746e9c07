"""`conduit validate`: check conduit.yaml and the files it names."""

from __future__ import annotations

import argparse

from .output import config_path, emit, project
from .parser import Commands, command


def run(args: argparse.Namespace) -> int:
    loaded = project(args)
    types = [stage.type for stage in loaded.config.models]
    emit(args, {"ok": True, "name": loaded.name, "models": types}, f"{config_path(args)}: ok ({loaded.name}: {' → '.join(types)})")
    return 0


def add(commands: Commands) -> None:
    command(commands, "validate", run, "check conduit.yaml and the files it names")

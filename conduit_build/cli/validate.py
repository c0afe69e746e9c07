"""`conduit validate`: check conduit.yaml and the files it names, and whether conduit.lock
(when there is one) still fits it: a stale lock is a warning, with the fix."""

from __future__ import annotations

import argparse

from .output import config_path, emit, note, project
from .parser import Commands, command


def run(args: argparse.Namespace) -> int:
    from ..image.lock import lock_status

    loaded = project(args)
    lock = lock_status(loaded)
    if lock.stale:
        note(f"warning: {lock.path.name} is stale: {'; '.join(lock.stale)} (run `conduit lock` and commit it)")
    types = [stage.type for stage in loaded.config.models]
    emit(args, {"ok": True, "name": loaded.name, "models": types,
                "lock": {"present": lock.present, "stale": lock.stale}},
         f"{config_path(args)}: ok ({loaded.name}: {' → '.join(types)})")
    return 0


def add(commands: Commands) -> None:
    command(commands, "validate", run, "check conduit.yaml, the files it names, and whether conduit.lock fits it")

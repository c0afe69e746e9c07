"""What every command shares: the config path, and printing for people or as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..config import Project, load


def config_path(args: argparse.Namespace) -> str:
    return str(args.file or "conduit.yaml")


def project(args: argparse.Namespace) -> Project:
    return load(config_path(args))


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    print(json.dumps(payload, indent=2) if args.json else text)


def note(text: str) -> None:
    """Progress for people, on stderr: stdout stays the result (and valid JSON under --json)."""
    print(text, file=sys.stderr, flush=True)

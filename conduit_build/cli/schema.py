"""`conduit schema`: the JSON Schema of conduit.yaml, for yaml-language-server."""

from __future__ import annotations

import argparse
import json

from ..config.schema import json_schema
from .parser import Commands, command


def run(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0


def add(commands: Commands) -> None:
    command(commands, "schema", run, "print the JSON Schema of conduit.yaml")

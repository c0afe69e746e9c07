"""How `conduit build` shows its progress: readable steps, quiet, or JSON events."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..image.engine import Progress


def printer(as_json: bool, quiet: bool) -> Callable[[Progress], None]:
    def show(event: Progress) -> None:
        if as_json:
            print(json.dumps(asdict(event)), file=sys.stderr, flush=True)
        elif event.kind == "note":
            print(f"warning: {event.text}", file=sys.stderr, flush=True)
        elif quiet:
            return
        elif event.kind == "step":
            print(f"[{event.step}/{event.steps}] {event.text}", file=sys.stderr, flush=True)
        elif event.kind == "output":
            print(f"    {event.text}", file=sys.stderr, flush=True)

    return show

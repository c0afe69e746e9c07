"""What the Python API and the project writer both speak of: a flow's stages as the
user gave them, and the example a first run leaves behind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FlowStage:
    """One `(type, file, hooks[, options])` of a flow, checked."""

    type: str
    file: str
    pre: Callable[..., Any] | str | None = None
    post: Callable[..., Any] | str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Example:
    """The first successful run, kept as the saved project's contract example and warm-up."""

    data: Any
    parameters: dict[str, Any]
    files: tuple[tuple[str, bytes], ...]

"""Conduit: conduit.yaml → a tested, pushed, deployable model-serving container."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .seed.api import Conduit, PredictionError

__all__ = ["Conduit", "PredictionError"]


def __getattr__(name: str) -> Any:
    # The Python API pulls in the server runtime; the CLI should not pay for it on every command.
    if name in __all__:
        from .seed import api

        return getattr(api, name)
    raise AttributeError(f"module 'conduit_build' has no attribute {name!r}")

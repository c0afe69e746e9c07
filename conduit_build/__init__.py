"""Conduit: conduit.yaml → a tested, pushed, deployable model-serving container."""

from .api import Conduit, PredictionError

__all__ = ["Conduit", "PredictionError"]

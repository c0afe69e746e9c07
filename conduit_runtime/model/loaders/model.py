"""What a loader returns (`Model`), and what several loaders share."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# (input, files, parameters) -> output
ModelFn = Callable[[Any, list[Any], dict[str, Any]], Any]


@dataclass(frozen=True)
class Model:
    call: ModelFn
    coerce: Callable[[Any], Any]
    # scikit-learn, XGBoost, onnxruntime and torch in inference mode take calls from
    # several threads; a Hugging Face fast tokenizer fails with "Already borrowed".
    thread_safe: bool = True
    # The client's message for an exception of the library that means the input does
    # not fit the model, or None for a real failure.
    rejects: Callable[[BaseException], str | None] | None = None
    is_async: bool = False  # `async def predict`: awaited on the event loop
    # Numbers per input row, where the library knows (scikit-learn's n_features_in_,
    # XGBoost's feature count, an ONNX input's last dimension): /openapi.json describes them.
    features: int | None = None
    # Its tensors for the Open Inference Protocol's model metadata ({"inputs": [...], "outputs": [...]}),
    # where the library tells them (signatures.py).
    signature: dict[str, Any] | None = None


class NoGPU(RuntimeError):
    """`hardware: gpu`, but the model would run on the CPU (no CUDA device, or a library built or
    installed without it): start-up stops here with this one line rather than serve slowly."""


GPU_FIX = "run it where a GPU is visible (docker --gpus, Kubernetes nvidia.com/gpu) with the CUDA build of the library"


def identity(data: Any) -> Any:
    return data


def read_pickle(path: Path) -> Any:
    """A .pkl written by pickle, cloudpickle or joblib.dump (which is not a plain pickle)."""
    if path.suffix == ".joblib":
        import joblib

        return joblib.load(path)
    try:
        with path.open("rb") as handle:
            return pickle.load(handle)
    except pickle.UnpicklingError:
        try:
            import joblib
        except ImportError:
            raise
        return joblib.load(path)  # joblib.dump(model, "model.pkl"), compressed or not


# (the model's file, options, gpu) -> the loaded Model
Loader = Callable[[Path, dict[str, Any], bool], Model]

"""torch modules: TorchScript (.pt) or a pickled module (.pkl), in inference mode."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

from ...errors import BadRequest
from .model import GPU_FIX, Model, NoGPU, read_pickle

TORCH_INPUT = re.compile(r"shape|size of tensor|dimension|dtype|Expected .* input", re.IGNORECASE)


def torch_rejects(exc: BaseException) -> str | None:
    """torch's RuntimeError about the input's shape or dtype. TorchScript puts its own
    traceback (with file paths) before the error: the client gets the last line only."""
    if not isinstance(exc, RuntimeError):
        return None
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if TORCH_INPUT.search(last) else None


def load_torch(path: Path, options: dict[str, Any], gpu: bool) -> Model:
    import numpy as np
    import torch

    if gpu and not torch.cuda.is_available():
        raise NoGPU(f"hardware: gpu, but torch {torch.__version__} sees no CUDA device "
                    f"(built for CUDA {torch.version.cuda or 'none'}): {GPU_FIX}")
    device = torch.device("cuda" if gpu else "cpu")
    if path.suffix == ".pkl":
        try:
            module = read_pickle(path)
        except pickle.UnpicklingError:  # torch.save(model, "model.pkl") is a zip, not a pickle
            module = torch.load(str(path), map_location=device, weights_only=False)
    else:
        try:
            module = torch.jit.load(str(path), map_location=device)
        except RuntimeError as exc:  # torch.save(model, "model.pt"): a whole module, not TorchScript
            try:
                module = torch.load(str(path), map_location=device, weights_only=False)
            except Exception:
                raise exc from None
    if not callable(module) or not hasattr(module, "eval"):
        raise TypeError(
            f"{path.name} holds a {type(module).__name__}, not a torch module: save the module itself "
            "(torch.jit.script(model).save(...) or torch.save(model, ...)), not its state_dict"
        )
    module = module.to(device)
    module.eval()
    if gpu:
        on = {tensor.device.type for tensor in (*module.parameters(), *module.buffers())}
        if on - {"cuda"}:
            raise NoGPU(f"hardware: gpu, but {path.name} has tensors on {', '.join(sorted(on))} after .to('cuda'): {GPU_FIX}")

    def coerce(data: Any) -> Any:
        if isinstance(data, torch.Tensor):
            return data.to(device)
        try:
            array = np.asarray(data)
        except ValueError as exc:
            raise BadRequest(f"data must be a rectangular array: {exc}", "bad_shape") from None
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        elif array.dtype.kind not in "biu":
            raise BadRequest("data must be numbers to make a tensor", "bad_shape")
        return torch.from_numpy(array).to(device)

    def call(x: Any, files: list[Any], params: dict[str, Any]) -> Any:
        with torch.inference_mode():
            return module(coerce(x) if isinstance(x, (torch.Tensor, np.ndarray, list)) else x)

    return Model(call=call, coerce=coerce, rejects=torch_rejects)

"""ONNX models through onnxruntime (the CUDA provider on GPU hardware)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .model import GPU_FIX, Model, NoGPU
from .signatures import onnx_signature
from .tabular import to_table


def onnx_rejects(exc: BaseException) -> str | None:
    """onnxruntime's INVALID_ARGUMENT: wrong rank, dimensions or type of an input."""
    return str(exc) if type(exc).__name__ == "InvalidArgument" else None


def load_onnx(path: Path, options: dict[str, Any], gpu: bool) -> Model:
    import numpy as np
    import onnxruntime

    # The CUDA provider is asked for on GPU hardware only, and then checked among the session's
    # active providers: onnxruntime lists what it was built with, and a session whose CUDA
    # libraries do not load falls back to the CPU with a warning only.
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if gpu else ["CPUExecutionProvider"]
    session = onnxruntime.InferenceSession(str(path), providers=providers)
    if gpu and "CUDAExecutionProvider" not in session.get_providers():
        raise NoGPU(f"hardware: gpu, but onnxruntime runs {path.name} on {', '.join(session.get_providers())} "
                    f"(the CUDA provider did not load): {GPU_FIX}")
    inputs = session.get_inputs()
    dtypes = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(string)": np.object_, "tensor(bool)": np.bool_}
    # A list goes to the first input as float32, unless that input declares another type
    # (a float64 graph, token ids): then as that type, which onnxruntime insists on.
    first_dtype = dtypes.get(inputs[0].type, np.float32) if inputs else np.float32

    def call(x: Any, files: list[Any], params: dict[str, Any]) -> Any:
        if isinstance(x, dict):
            feeds = {i.name: np.asarray(x[i.name], dtype=dtypes.get(i.type)) for i in inputs if i.name in x}
        else:
            feeds = {inputs[0].name: np.asarray(x, dtype=first_dtype)}
        return session.run(None, feeds)[0]

    def coerce(data: Any) -> Any:
        return data if isinstance(data, dict) else to_table(data)

    shape = inputs[0].shape if len(inputs) == 1 else None
    features = shape[-1] if shape and len(shape) == 2 and isinstance(shape[-1], int) and shape[-1] > 0 else None
    return Model(call=call, coerce=coerce, rejects=onnx_rejects,
                 features=features if first_dtype in (np.float32, np.float64) else None,
                 signature=onnx_signature(session))

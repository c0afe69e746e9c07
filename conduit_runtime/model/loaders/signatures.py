"""Model signatures: a model's input and output tensors as its library tells them
(scikit-learn's n_features_in_ and classes_, an ONNX session's inputs and outputs), in
the Open Inference Protocol's vocabulary of datatypes. The V2 model metadata answer
(wire/v2.py) and /openapi.json describe the model with them."""

from __future__ import annotations

from typing import Any

# The protocol's datatypes as numpy type codes (little-endian, as the binary extension sends them).
DTYPES: dict[str, str] = {
    "BOOL": "?", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}
DATATYPES = (*DTYPES, "BYTES")
# numpy's (kind, itemsize) of each: an output's datatype.
BY_KIND = {("b", 1): "BOOL", **{("i", 2 ** n): f"INT{8 * 2 ** n}" for n in range(4)},
           **{("u", 2 ** n): f"UINT{8 * 2 ** n}" for n in range(4)}, ("f", 2): "FP16", ("f", 4): "FP32", ("f", 8): "FP64"}

ONNX_TYPES = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16", "tensor(bool)": "BOOL",
              "tensor(string)": "BYTES", **{f"tensor({t.lower()})": t for t in DTYPES if "INT" in t}}


def tensor_meta(name: str, datatype: str, shape: Any) -> dict[str, Any]:
    """A tensor's metadata; a dimension the model leaves open (None, a symbolic name) is -1."""
    dims = [d if isinstance(d, int) and d >= 0 else -1 for d in (shape or [])]
    return {"name": name, "datatype": datatype, "shape": dims}


def onnx_signature(session: Any) -> dict[str, list[dict[str, Any]]]:
    def meta(arg: Any) -> dict[str, Any]:
        return tensor_meta(arg.name, ONNX_TYPES.get(arg.type, "BYTES"), arg.shape)

    # The loader answers with the first output only (DESIGN §2): the metadata says so too.
    return {"inputs": [meta(i) for i in session.get_inputs()], "outputs": [meta(o) for o in session.get_outputs()[:1]]}


def estimator_signature(estimator: Any, method: str, features: int | None) -> dict[str, list[dict[str, Any]]]:
    """scikit-learn and XGBoost: rows of n_features_in_ numbers in; out, what the method gives."""
    classes = getattr(estimator, "classes_", None)
    out_float = "FP32" if type(estimator).__module__.startswith("xgboost") else "FP64"
    if method == "predict_proba":
        output = tensor_meta("output-0", out_float, [-1, len(classes) if classes is not None else -1])
    elif method == "predict" and classes is not None:
        import numpy as np  # every estimator brings it

        kind = (np.asarray(classes).dtype.kind, np.asarray(classes).dtype.itemsize)
        output = tensor_meta("output-0", BY_KIND.get(kind, "BYTES"), [-1])
    elif method == "predict":
        output = tensor_meta("output-0", out_float, [-1])
    else:
        output = tensor_meta("output-0", "FP64", [-1, getattr(estimator, "n_components_", -1)])
    return {"inputs": [tensor_meta("input-0", "FP64", [-1, features if features is not None else -1])],
            "outputs": [output]}

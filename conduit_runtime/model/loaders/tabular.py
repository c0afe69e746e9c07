"""scikit-learn and XGBoost: rows of features as a 2-D table, one method of the estimator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import BadRequest, InputRejected
from .model import GPU_FIX, Loader, Model, NoGPU, read_pickle
from .signatures import estimator_signature


def to_table(data: Any) -> Any:
    """Rows of features as a 2-D array (one bare row becomes a table of one)."""
    import numpy as np

    if hasattr(data, "detach"):  # a torch tensor from an earlier stage
        data = data.detach().cpu().numpy()
    if is_table(data):
        return data  # already a table from an earlier stage: np.asarray would wreck it
    try:
        table = np.asarray(data)
    except ValueError as exc:
        raise BadRequest(f"data must be a rectangular table of rows: {exc}", "bad_shape") from None
    if table.ndim == 1 and table.dtype.kind in "biuf":
        table = table.reshape(1, -1)
    if table.ndim not in (1, 2):
        raise BadRequest(f"data must be a list of rows (2-D); got a {table.ndim}-D array", "bad_shape")
    if isinstance(data, list):  # the request's own numbers, as /openapi.json describes them
        check_range(table)
    return table


FLOAT32_MAX = 3.4028234663852886e38


def check_range(table: Any) -> None:
    """Numbers within float32's range, which ONNX and torch models compute in (and past
    which a scaler's output turns infinite): beyond it a number is the client's mistake."""
    import numpy as np

    if table.dtype.kind == "O":  # integers too large for int64 among the numbers
        beyond = any(abs(v) > FLOAT32_MAX for v in table.flat if isinstance(v, (int, float)) and not isinstance(v, bool))
    else:
        beyond = table.dtype.kind == "f" and table.size > 0 and float(np.abs(table).max()) > FLOAT32_MAX
    if beyond:
        raise InputRejected("a number is beyond ±3.4e38 (float32's range)")


def is_table(data: Any) -> bool:
    """A scipy sparse matrix or a pandas DataFrame (e.g. a TfidfVectorizer's output)."""
    sparse = hasattr(data, "tocsr") and hasattr(data, "nnz")
    frame = hasattr(data, "columns") and hasattr(data, "iloc")
    return sparse or frame


def sklearn_method(method: str) -> Loader:
    def load(path: Path, options: dict[str, Any], gpu: bool) -> Model:
        estimator = read_pickle(path)
        bound = getattr(estimator, method)
        features = feature_count(estimator)
        return Model(call=lambda x, files, params: bound(x), coerce=to_table, features=features,
                     signature=estimator_signature(estimator, method, features))

    return load


def xgboost_method(cls_name: str, method: str) -> Loader:
    def load(path: Path, options: dict[str, Any], gpu: bool) -> Model:
        import xgboost

        if path.suffix == ".pkl":
            estimator = read_pickle(path)
        else:
            estimator = getattr(xgboost, cls_name)()
            estimator.load_model(str(path))
        if gpu:
            if not xgboost.build_info().get("USE_CUDA"):
                raise NoGPU(f"hardware: gpu, but xgboost {xgboost.__version__} is built without CUDA: {GPU_FIX}")
            estimator.set_params(device="cuda")
        bound = getattr(estimator, method)
        features = feature_count(estimator)
        return Model(call=lambda x, files, params: bound(x), coerce=to_table, features=features,
                     signature=estimator_signature(estimator, method, features))

    return load


def feature_count(estimator: Any) -> int | None:
    try:
        count = getattr(estimator, "n_features_in_", None)  # XGBoost raises before it is fitted
    except Exception:
        return None
    return int(count) if count is not None and hasattr(count, "__index__") else None

"""One small loader per model type (DESIGN §2).

A loader reads the model once, at start-up, and returns a `Model`: how to
coerce raw request data when there is no `pre` hook, how to call it, whether
several threads may call it at once, and which of its library's errors mean
"this input does not fit the model" (a 422, not a 500).
Model libraries are imported inside their loader, so an image only needs the
libraries of the types it serves.
"""

from __future__ import annotations

import inspect
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BadRequest, InputRejected
from .oip import estimator_signature, onnx_signature
from .userland import load_object, positional_arity

# (input, files, parameters) -> output
Call = Callable[[Any, list[Any], dict[str, Any]], Any]


@dataclass(frozen=True)
class Model:
    call: Call
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
    # where the library tells them (oip.py).
    signature: dict[str, Any] | None = None


class NoGPU(RuntimeError):
    """`hardware: gpu`, but the model would run on the CPU (no CUDA device, or a library built or
    installed without it): start-up stops here with this one line rather than serve slowly."""


GPU_FIX = "run it where a GPU is visible (docker --gpus, Kubernetes nvidia.com/gpu) with the CUDA build of the library"


def onnx_rejects(exc: BaseException) -> str | None:
    """onnxruntime's INVALID_ARGUMENT: wrong rank, dimensions or type of an input."""
    return str(exc) if type(exc).__name__ == "InvalidArgument" else None


TORCH_INPUT = re.compile(r"shape|size of tensor|dimension|dtype|Expected .* input", re.IGNORECASE)


def torch_rejects(exc: BaseException) -> str | None:
    """torch's RuntimeError about the input's shape or dtype. TorchScript puts its own
    traceback (with file paths) before the error: the client gets the last line only."""
    if not isinstance(exc, RuntimeError):
        return None
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if TORCH_INPUT.search(last) else None


def identity(data: Any) -> Any:
    return data


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


def sklearn_method(method: str) -> Callable[[Path, dict[str, Any], bool], Model]:
    def load(path: Path, options: dict[str, Any], gpu: bool) -> Model:
        estimator = read_pickle(path)
        bound = getattr(estimator, method)
        features = feature_count(estimator)
        return Model(call=lambda x, files, params: bound(x), coerce=to_table, features=features,
                     signature=estimator_signature(estimator, method, features))

    return load


def xgboost_method(cls_name: str, method: str) -> Callable[[Path, dict[str, Any], bool], Model]:
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


def load_spacy(path: Path, options: dict[str, Any], gpu: bool) -> Model:
    import spacy

    if gpu and not spacy.prefer_gpu():
        raise NoGPU(f"hardware: gpu, but spaCy found no GPU (spacy.prefer_gpu() is False): {GPU_FIX}")
    nlp = spacy.load(path, **options)

    def call(x: Any, files: list[Any], params: dict[str, Any]) -> Any:
        texts = [x] if isinstance(x, str) else x
        return [nlp(text) for text in texts]

    return Model(call=call, coerce=identity, thread_safe=False)


def load_hf_pipeline(path: Path, options: dict[str, Any], gpu: bool) -> Model:
    import transformers

    options = dict(options)
    task = options.pop("task", None)
    if gpu:
        import torch

        if not torch.cuda.is_available():
            raise NoGPU(f"hardware: gpu, but torch {torch.__version__} sees no CUDA device: {GPU_FIX}")
        options.setdefault("device", 0)
    pipe = transformers.pipeline(task, model=str(path), **options)
    if gpu and getattr(getattr(pipe, "device", None), "type", "cuda") != "cuda":
        raise NoGPU(f"hardware: gpu, but the pipeline runs on {pipe.device}: {GPU_FIX}")
    if getattr(pipe, "task", task) == "text-generation":  # streams its text as it is generated
        from .textgen import text_generation

        return text_generation(pipe)
    # The pipeline's fast tokenizer is one Rust object that refuses a second caller.
    return Model(call=lambda x, files, params: pipe(x, **params), coerce=identity, thread_safe=False)


def load_python(project_dir: Path, ref: str) -> Model:
    """The user's class. It is called one prediction at a time unless it says
    `thread_safe = True`; an `async def predict` runs on the event loop instead."""
    cls = load_object(project_dir, ref)
    instance = cls()
    load = getattr(instance, "load", None)
    if callable(load):
        load(project_dir) if positional_arity(load) >= 1 else load()
    predict = instance.predict
    call: Call = (lambda x, files, params: predict(x, files)) if positional_arity(predict) >= 2 else (
        lambda x, files, params: predict(x))
    return Model(call=call, coerce=identity, thread_safe=bool(getattr(cls, "thread_safe", False)),
                 is_async=inspect.iscoroutinefunction(predict))


LOADERS: dict[str, Callable[[Path, dict[str, Any], bool], Model]] = {
    "sklearn": sklearn_method("predict"),
    "sklearn_classifier": sklearn_method("predict_proba"),
    "sklearn_preprocessor": sklearn_method("transform"),
    "xgboost_classifier": xgboost_method("XGBClassifier", "predict_proba"),
    "xgboost_regressor": xgboost_method("XGBRegressor", "predict"),
    "onnx": load_onnx,
    "torch": load_torch,
    "spacy": load_spacy,
    "hf_pipeline": load_hf_pipeline,
}
MODEL_TYPES = (*LOADERS, "python")


def load_model(project_dir: Path, type_: str, file: str, options: dict[str, Any], gpu: bool) -> Model:
    if type_ == "python":
        return load_python(project_dir, file)
    return LOADERS[type_](project_dir / file, options, gpu)

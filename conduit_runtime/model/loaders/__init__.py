"""One small loader per model type (DESIGN §2), one module per model family:

    tabular.py   sklearn, sklearn_classifier, sklearn_preprocessor, xgboost_classifier, xgboost_regressor
    onnx.py      onnx               torch.py    torch            spacy.py   spacy
    hf.py        hf_pipeline (textgen.py: text generation, streamed; hf_parameters.py: what requests may pass)
    python.py    python (the user's class)

A loader reads the model once, at start-up, and returns a `Model` (model.py): how to
coerce raw request data when there is no `pre` hook, how to call it, whether
several threads may call it at once, which of its library's errors mean
"this input does not fit the model" (a 422, not a 500), and its tensors where
the library tells them (signatures.py, for the Open Inference Protocol's metadata).
Model libraries are imported inside their loader, so an image only needs the
libraries of the types it serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .hf import load_hf_pipeline
from .model import Loader, Model, NoGPU
from .onnx import load_onnx
from .python import load_python
from .spacy import load_spacy
from .tabular import sklearn_method, xgboost_method
from .torch import load_torch

LOADERS: dict[str, Loader] = {
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


def load_model(project_dir: Path, type_: str, file: str, options: dict[str, Any], gpu: bool,
               max_new_tokens: int = 512) -> Model:
    if type_ == "python":
        return load_python(project_dir, file)
    if type_ == "hf_pipeline":  # the one loader with a cap of its own (models[i].max_new_tokens)
        return load_hf_pipeline(project_dir / file, options, gpu, max_new_tokens)
    return LOADERS[type_](project_dir / file, options, gpu)


__all__ = ["LOADERS", "MODEL_TYPES", "Model", "NoGPU", "load_model"]

"""`conduit init`: a working project skeleton for any model type.

Besides conduit.yaml and hooks.py it writes train.py, which makes a small real
model from data shipped with the model's library, and runs it when that library
is installed here, so the new project validates and serves at once.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConduitError, UsageError
from ..templates import TEMPLATES, render

IRIS_ROW = [[5.1, 3.5, 1.4, 0.2]]


@dataclass(frozen=True)
class Kind:
    file: str
    requirements: list[str]
    example: Any = field(default_factory=lambda: IRIS_ROW)
    options: dict[str, Any] = field(default_factory=dict)
    train: str | None = None  # templates/init/train/<train>.py


SKLEARN = ["scikit-learn==1.9.1"]
KINDS = {
    "sklearn": Kind("model.pkl", SKLEARN, train="sklearn"),
    "sklearn_classifier": Kind("model.pkl", SKLEARN, train="sklearn"),
    "sklearn_preprocessor": Kind("model.pkl", SKLEARN, train="sklearn_preprocessor"),
    "xgboost_classifier": Kind("model.json", ["xgboost-cpu==3.2.0", *SKLEARN], train="xgboost_classifier"),
    "xgboost_regressor": Kind("model.json", ["xgboost-cpu==3.2.0", *SKLEARN], train="xgboost_regressor"),
    "onnx": Kind("model.onnx", ["onnxruntime==1.32.0"], train="onnx"),
    "torch": Kind("model.pt", ["torch==2.13.0"], train="torch"),
    "spacy": Kind("model", ["spacy==3.8.18"], ["Conduit serves models. It builds images."], train="spacy"),
    "hf_pipeline": Kind(
        "model", ["transformers==5.24.0", "torch==2.13.0"], ["i love this movie"], {"task": "text-classification"}, "hf_pipeline"
    ),
    "python": Kind("model.py:Model", [], [[1.0, 2.0]]),
}


def init(directory: Path, model_type: str, force: bool = False) -> list[Path]:
    kind = KINDS.get(model_type)
    if kind is None:
        raise UsageError(f"unknown model type {model_type!r}", f"one of {', '.join(KINDS)}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot make the project folder {directory}: {exc.strerror}", "name a new or empty folder") from None
    config = directory / "conduit.yaml"
    if config.exists() and not force:
        raise UsageError(f"{config} exists already", "pass --force to overwrite it")
    name = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")[:63] or "model"
    files = {
        config: render(
            "init/conduit.yaml.j2",
            name=name,
            type=model_type,
            file=kind.file,
            options=json.dumps(kind.options) if kind.options else "",
            requirements=json.dumps(kind.requirements),
            example=json.dumps(kind.example),
        ),
        directory / "hooks.py": (TEMPLATES / "init/hooks.py").read_text(),
    }
    if model_type == "python":
        files[directory / "model.py"] = (TEMPLATES / "init/model.py").read_text()
    if kind.train:
        files[directory / "train.py"] = (TEMPLATES / f"init/train/{kind.train}.py").read_text()
    for path, text in files.items():
        if path.exists() and not force and path != config:
            continue  # never overwrite the user's own hooks or model code
        path.write_text(text)
    written = list(files)
    if kind.train and not (directory / kind.file).exists():
        written.append(train(directory, kind))
    return written


def train(directory: Path, kind: Kind) -> Path:
    """Run train.py with this Python, to make the model file."""
    hint = f"install {' '.join(kind.requirements)} and run `python train.py` in {directory}"
    try:
        result = subprocess.run(
            [sys.executable, "train.py"], cwd=directory, capture_output=True, text=True, timeout=600, check=False
        )
    except subprocess.TimeoutExpired:
        raise ConduitError("wrote the skeleton, but train.py did not finish within 600 s", hint) from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ConduitError(
            f"wrote the skeleton, but train.py could not make {kind.file}: {last}",
            hint,
        )
    return directory / kind.file


__all__ = ["KINDS", "init"]

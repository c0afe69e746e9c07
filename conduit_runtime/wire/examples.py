"""A `tests:` example as the input of a prediction: the warm-up call (the first example)
reads it as a request would be read, a JSON body's data or an Open Inference Protocol
infer request, with the example's files as uploads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..files import as_upload
from ..spec import Example
from .codec import dumps
from .predict import Request, check_data, check_parameters
from .v2 import parse_infer


def example_request(example: Example, project_dir: Path) -> Request:
    if example.v2 is not None:
        return parse_infer(dumps(example.v2), None).to_request()
    files = [as_upload(project_dir / name, i) for i, name in enumerate(example.files)]
    data = example.data
    if isinstance(data, dict):
        return Request(check_data(data.get("data")), check_parameters(data.get("parameters")), files)
    return Request(check_data(data if data is not None else []), {}, files)


def warmup_of(example: Example | None, project_dir: Path) -> Callable[[], tuple[Any, list[Any], dict[str, Any]]] | None:
    """The warm-up's input, made when the warm-up runs (the model is loaded by then)."""
    if example is None:
        return None

    def warmup() -> tuple[Any, list[Any], dict[str, Any]]:
        request = example_request(example, project_dir)
        return request.data, request.files, request.parameters

    return warmup

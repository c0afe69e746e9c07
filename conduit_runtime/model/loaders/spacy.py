"""spaCy pipelines, loaded from their folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .model import GPU_FIX, Model, NoGPU, identity


def load_spacy(path: Path, options: dict[str, Any], gpu: bool) -> Model:
    import spacy

    if gpu and not spacy.prefer_gpu():
        raise NoGPU(f"hardware: gpu, but spaCy found no GPU (spacy.prefer_gpu() is False): {GPU_FIX}")
    nlp = spacy.load(path, **options)

    def call(x: Any, files: list[Any], params: dict[str, Any]) -> Any:
        texts = [x] if isinstance(x, str) else x
        return [nlp(text) for text in texts]

    return Model(call=call, coerce=identity, thread_safe=False)

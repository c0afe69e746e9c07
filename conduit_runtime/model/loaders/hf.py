"""Hugging Face transformers pipelines (text generation streams: textgen.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .model import GPU_FIX, Model, NoGPU, identity


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
        from .textgen import text_generation  # only images that generate text need its imports

        return text_generation(pipe)
    # The pipeline's fast tokenizer is one Rust object that refuses a second caller.
    return Model(call=lambda x, files, params: pipe(x, **params), coerce=identity, thread_safe=False)

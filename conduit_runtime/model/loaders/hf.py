"""Hugging Face transformers pipelines (text generation streams: textgen.py; the request
parameters each task takes: hf_parameters.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .hf_parameters import parameter_check
from .model import GPU_FIX, Model, NoGPU, identity


def load_hf_pipeline(path: Path, options: dict[str, Any], gpu: bool, max_new_tokens: int = 512) -> Model:
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
    check = parameter_check(getattr(pipe, "task", task), max_new_tokens)
    if getattr(pipe, "task", task) == "text-generation":  # streams its text as it is generated
        from .textgen import text_generation  # only images that generate text need its imports

        return text_generation(pipe, check)

    def call(x: Any, files: list[Any], params: dict[str, Any]) -> Any:
        if params:
            check(params)
        return pipe(x, **params)

    # The pipeline's fast tokenizer is one Rust object that refuses a second caller.
    return Model(call=call, coerce=identity, thread_safe=False)

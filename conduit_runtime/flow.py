"""A flow: stages run in order, each output feeding the next.

Hooks are looked up and their arity read once, at load; a request then only
calls functions. `pre(data)` / `pre(data, files)`; `post(out)`,
`post(out, data)` / `post(out, data, files)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ServerError, from_user_code
from .loaders import Model, load_model
from .spec import ServerSpec, StageSpec
from .userland import load_object, positional_arity

Hook = Callable[[Any, Any, list[Any]], Any]


def bind_pre(fn: Callable[..., Any]) -> Hook:
    if positional_arity(fn) >= 2:
        return lambda data, _unused, files: fn(data, files)
    return lambda data, _unused, files: fn(data)


def bind_post(fn: Callable[..., Any]) -> Hook:
    arity = positional_arity(fn)
    if arity >= 3:
        return lambda out, data, files: fn(out, data, files)
    if arity == 2:
        return lambda out, data, files: fn(out, data)
    return lambda out, data, files: fn(out)


@dataclass(frozen=True)
class Stage:
    label: str
    model: Model
    pre: Hook | None
    post: Hook | None

    def run(self, data: Any, files: list[Any], parameters: dict[str, Any]) -> Any:
        try:
            if self.pre:
                rewind(files)
                x = self.pre(data, None, files)
            else:
                x = self.model.coerce(data)
        except Exception as exc:
            raise from_user_code(exc, f"{self.label} pre hook") from exc
        try:
            rewind(files)  # a pre hook that read the files must not leave the model at their end
            out = self.model.call(x, files, parameters)
        except Exception as exc:
            raise from_user_code(exc, f"{self.label} model") from exc
        if self.post is None:
            return out
        try:
            rewind(files)
            return self.post(out, data, files)
        except Exception as exc:
            raise from_user_code(exc, f"{self.label} post hook") from exc


class Flow:
    def __init__(self, stages: list[Stage]) -> None:
        self.stages = stages

    @classmethod
    def load(cls, spec: ServerSpec) -> Flow:
        return cls([load_stage(spec, index, stage) for index, stage in enumerate(spec.stages)])

    def run(self, data: Any, files: list[Any], parameters: dict[str, Any]) -> Any:
        for stage in self.stages:
            data = stage.run(data, files, parameters)
        return data


def rewind(files: list[Any]) -> None:
    """Every hook and model sees each file from its start (DESIGN §2: at position 0)."""
    for upload in files:
        if not upload.closed:  # a hook may have closed one; reading it then is its own error
            upload.seek(0)


def load_stage(spec: ServerSpec, index: int, stage: StageSpec) -> Stage:
    label = f"models[{index}] ({stage.type})"
    model = load_model(spec.project_dir, stage.type, stage.file, stage.options, spec.gpu)
    pre = bind_pre(load_object(spec.project_dir, stage.pre)) if stage.pre else None
    post = bind_post(load_object(spec.project_dir, stage.post)) if stage.post else None
    return Stage(label, model, pre, post)


__all__ = ["Flow", "ServerError"]

"""The escape hatch: the user's own class (`model.py:ClassName`)."""

from __future__ import annotations

import inspect
from pathlib import Path

from ..userland import load_object, positional_arity
from .model import Model, ModelFn, identity


def load_python(project_dir: Path, ref: str) -> Model:
    """The user's class. It is called one prediction at a time unless it says
    `thread_safe = True`; an `async def predict` runs on the event loop instead."""
    cls = load_object(project_dir, ref)
    instance = cls()
    load = getattr(instance, "load", None)
    if callable(load):
        load(project_dir) if positional_arity(load) >= 1 else load()
    predict = instance.predict
    call: ModelFn = (lambda x, files, params: predict(x, files)) if positional_arity(predict) >= 2 else (
        lambda x, files, params: predict(x))
    return Model(call=call, coerce=identity, thread_safe=bool(getattr(cls, "thread_safe", False)),
                 is_async=inspect.iscoroutinefunction(predict))

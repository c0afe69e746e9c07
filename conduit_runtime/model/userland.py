"""Importing the user's own code (hooks, python models) from the project folder."""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

# path → (the file's stamp when imported, the module)
_modules: dict[Path, tuple[tuple[int, int], ModuleType]] = {}
_imports = itertools.count()


def load_object(project_dir: Path, ref: str) -> Any:
    """`hooks.py:pre_process` → the object, importing each file once (again only
    once it changed on disk: a notebook that edits hooks.py and loads anew sees the edit)."""
    file_part, _, name = ref.rpartition(":")
    path = (project_dir / file_part).resolve()
    try:
        info = path.stat()
    except OSError:
        raise ImportError(f"cannot import {file_part}: no such file in {project_dir}") from None
    stamp = (info.st_mtime_ns, info.st_size)
    cached = _modules.get(path)
    if cached is not None and cached[0] == stamp:
        module = cached[1]
    else:
        # Hooks may import their neighbours (`from labels import NAMES`).
        if str(project_dir) not in sys.path:
            sys.path.insert(0, str(project_dir))
        module_name = f"conduit_user_{path.stem}_{next(_imports)}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {file_part}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        _modules[path] = (stamp, module)
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImportError(f"{file_part} has no attribute {name!r}") from None


def positional_arity(fn: Callable[..., Any]) -> int:
    """How many positional arguments `fn` accepts (a large number for *args)."""
    count = 0
    for param in inspect.signature(fn).parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            return 99
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            count += 1
    return count

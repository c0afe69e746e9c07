"""Python callables given as hooks → what conduit.yaml names (`file.py:function`).

    a function of a module file inside the project  → hooks.py:pre_process
    a function of a module file elsewhere           → that file is copied into the project, then as above
    anything else: a function defined in a notebook
    or a script (`__main__`), a lambda, a closure   → pickled with cloudpickle into notebook_hooks.py,
                                                      which conduit.yaml names like any module

cloudpickle writes bytecode, which only the Python minor version that wrote it
can run: notebook_hooks.py checks that at import (in the image, at start-up) and
says how to fix a mismatch. Also here: the top-level modules a hook imports, so
the saved project can require the distributions that provide them.
"""

from __future__ import annotations

import ast
import base64
import dis
import shutil
import sys
import sysconfig
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import CodeType, FunctionType, ModuleType
from typing import Any

from ..errors import UsageError

PICKLED_MODULE = "notebook_hooks.py"
MARK = "# Written by Conduit.save()"

NOTEBOOK_HOOKS = '''{mark}: hooks defined in a notebook or script, pickled with cloudpickle.
# Define them again and save, or move them into a module file (hooks.py) to edit them here.
"""Hooks pickled by Python {major}.{minor}: {names}."""

import base64
import pickle
import sys

PICKLED_BY = ({major}, {minor})
if sys.version_info[:2] != PICKLED_BY:
    raise RuntimeError(
        "{module} holds hooks pickled by Python {major}.{minor}, which only that Python can load, "
        "and this is Python %d.%d: set python: \\"{major}.{minor}\\" and image.base: python:{major}.{minor}-slim "
        "in conduit.yaml, or run Conduit.save() again under Python %d.%d" % (sys.version_info[:2] * 2)
    )
try:
    import cloudpickle  # noqa: F401  (the pickles refer to it)
except ImportError:
    raise RuntimeError("{module} needs cloudpickle: add it to requirements in conduit.yaml") from None

_HOOKS = pickle.loads(base64.b64decode(
{payload}
))
{bindings}
'''


def written_by_us(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as handle:
            return handle.readline().startswith(MARK)
    except (OSError, UnicodeDecodeError):
        return False


class HookExport:
    """Collects the references of a project's hooks; `finish()` writes notebook_hooks.py."""

    def __init__(self, root: Path, source: Path | None = None) -> None:
        self.root = root  # the project being written
        self.source = source or root  # the folder the hooks' files were loaded from
        self.pickled: dict[str, Callable[..., Any]] = {}
        self.modules: set[str] = set()  # top-level modules the hooks import
        self.written: list[Path] = []

    def reference(self, fn: Callable[..., Any], fallback: str) -> str:
        """`file.py:function` for `fn`; `fallback` names it in notebook_hooks.py when it has no usable name."""
        source = module_file(fn)
        if source is not None:
            self.modules |= file_imports(source)
            if source.is_relative_to(self.root):
                relative = source.relative_to(self.root)
            else:
                inner = source.is_relative_to(self.source)
                relative = self.copy_in(source, source.relative_to(self.source) if inner else Path(source.name))
            return f"{relative.as_posix()}:{fn.__name__}"
        self.modules |= callable_imports(fn)
        for name, pickled in self.pickled.items():
            if pickled is fn:  # the same function in two places: pickled once
                return f"{PICKLED_MODULE}:{name}"
        name = fn.__name__ if fn.__name__.isidentifier() and fn.__name__ not in self.pickled else fallback
        if name.startswith("_") or name in ("base64", "pickle", "sys", "cloudpickle", "PICKLED_BY"):
            name = fallback
        self.pickled[name] = fn
        return f"{PICKLED_MODULE}:{name}"

    def copy_in(self, source: Path, relative: Path) -> Path:
        """A hook's module file from outside the project, copied in as `relative`."""
        target = self.root / relative
        if target.exists() and target.read_bytes() != source.read_bytes():
            raise UsageError(f"a hook lives in {source}, and the project has another {relative}",
                             f"move {source.name} into {self.root}, or rename one of them")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            self.written.append(target)
        return relative

    def finish(self) -> None:
        """Write notebook_hooks.py when a hook was pickled; remove one we wrote before when none was."""
        path = self.root / PICKLED_MODULE
        if path.exists() and not written_by_us(path):
            raise UsageError(f"{path} exists and was not written by Conduit.save()",
                             "rename that file: Conduit.save() writes pickled hooks under this name")
        if not self.pickled:
            path.unlink(missing_ok=True)
            return
        try:
            import cloudpickle
        except ImportError:
            raise UsageError("hooks defined in a notebook or script are saved with cloudpickle, which is not installed",
                             "pip install cloudpickle, or define the hooks in a module file such as hooks.py") from None
        try:
            blob = base64.b64encode(cloudpickle.dumps(self.pickled)).decode()
        except Exception as exc:  # cloudpickle raises whatever the object's own __reduce__ raises
            raise UsageError(f"a hook cannot be pickled ({type(exc).__name__}: {exc})",
                             "define it in a module file such as hooks.py, which is saved as a reference") from None
        major, minor = sys.version_info[:2]
        path.write_text(NOTEBOOK_HOOKS.format(
            mark=MARK, major=major, minor=minor, module=PICKLED_MODULE, names=", ".join(self.pickled),
            payload="\n".join(f'    "{line}"' for line in textwrap.wrap(blob, 96)),
            bindings="\n".join(f"{name} = _HOOKS[{name!r}]" for name in self.pickled),
        ))
        self.written.append(path)


def module_file(fn: Callable[..., Any]) -> Path | None:
    """The user's module file that defines `fn` as a top-level name, or None (pickle it then):
    `__main__`, lambdas, closures, and functions of installed packages or the standard library."""
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    file = getattr(module, "__file__", None)
    if module is None or module.__name__ == "__main__" or not file or not str(file).endswith(".py"):
        return None
    if getattr(module, getattr(fn, "__name__", ""), None) is not fn or "<" in getattr(fn, "__qualname__", "<"):
        return None
    path = Path(file).resolve()
    installed = {Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "purelib", "platlib")}
    if any(path.is_relative_to(folder) for folder in installed) or "site-packages" in path.parts:
        return None
    return path


def file_imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports in a Python file."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
    return found


def callable_imports(fn: Any, seen: set[int] | None = None) -> set[str]:
    """Top-level modules a function imports or uses: `import` statements in its code (nested
    functions too), and the modules, functions and classes its globals and closure name."""
    seen = set() if seen is None else seen
    if id(fn) in seen or not isinstance(fn, FunctionType):
        return set()
    seen.add(id(fn))
    found: set[str] = set()
    names: set[str] = set()
    for code in code_objects(fn.__code__):
        names |= set(code.co_names)
        found |= {str(ins.argval).partition(".")[0] for ins in dis.get_instructions(code) if ins.opname == "IMPORT_NAME"}
    values = [fn.__globals__[name] for name in names if name in fn.__globals__]
    values += [cell.cell_contents for cell in fn.__closure__ or () if cell_filled(cell)]
    for value in values:
        if isinstance(value, ModuleType):
            found.add(value.__name__.partition(".")[0])
        elif isinstance(value, FunctionType) and value.__module__ == "__main__":
            found |= callable_imports(value, seen)  # another notebook function: pickled along with it
        elif isinstance(getattr(value, "__module__", None), str):
            found.add(value.__module__.partition(".")[0])
    return found - {"__main__", "builtins"}


def code_objects(code: CodeType) -> Iterator[CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from code_objects(const)


def cell_filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018  (an empty cell raises)
    except ValueError:
        return False
    return True


__all__ = ["PICKLED_MODULE", "HookExport", "callable_imports", "file_imports", "written_by_us"]

"""A Conduit built in Python → a project on disk that `conduit build` builds (GitOps).

    conduit.yaml          name, python, hardware, models (hooks as file.py:function),
                          requirements (given, then inferred and pinned), tests, …
    notebook_hooks.py     hooks defined in a notebook or script, pickled (hook_export)
    samples/…             the files of the first successful run, its contract example

Requirements are inferred from what is installed here: the library of each model
type, and the distributions providing what the hooks import, each pinned to the
version the notebook ran with. Requirements given by name are kept as given.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError
from ..image.requirements import RUNTIME_DIR
from .hook_export import MARK, PICKLED_MODULE, HookExport, file_imports, written_by_us
from .stages import Example, FlowStage

RUNTIME_REQUIREMENTS = RUNTIME_DIR / "requirements.txt"
# The modules each model type's loader imports.
TYPE_MODULES = {
    "sklearn": ("sklearn",), "sklearn_classifier": ("sklearn",), "sklearn_preprocessor": ("sklearn",),
    "xgboost_classifier": ("xgboost",), "xgboost_regressor": ("xgboost",), "onnx": ("onnxruntime", "numpy"),
    "torch": ("torch",), "spacy": ("spacy",), "hf_pipeline": ("transformers", "torch"), "python": (),
}
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")  # may hold cloudpickled functions


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\s<>=!~;\[@]", name.strip(), maxsplit=1)[0]).lower()


class ProjectWriter:
    def __init__(self, name: str, source: Path, target: Path, hardware: Any, options: dict[str, Any],
                 python: tuple[int, int]) -> None:
        self.name = name
        self.source = source  # where the model files are (the folder given to load())
        self.target = target  # where the project is written
        self.hardware = hardware
        self.options = options  # the conduit.yaml keys given to Conduit()
        self.python = f"{python[0]}.{python[1]}"

    def write(self, stages: Sequence[FlowStage], example: Example | None) -> Path:
        path = self.target / "conduit.yaml"
        if path.exists() and not written_by_us(path):
            raise UsageError(f"{path} exists and was not written by Conduit.save()",
                             "save into another folder, or use Conduit.from_file() for that project")
        self.target.mkdir(parents=True, exist_ok=True)
        hooks = HookExport(self.target, self.source)
        models = [self.stage(stage, index, hooks) for index, stage in enumerate(stages)]
        hooks.finish()
        python = self.options.get("python", self.python)
        if hooks.pickled and python != self.python:
            raise UsageError(f"python: {python!r} was asked, and hooks defined in this notebook are pickled by "
                             f"Python {self.python}, which only that version can load",
                             f"define them in a module file (hooks.py), or save under Python {python}")
        modules = set(hooks.modules)
        for stage in stages:
            modules |= set(TYPE_MODULES[stage.type])
            if stage.type == "python":
                modules |= file_imports(self.target / stage.file.rpartition(":")[0])
            if hooks.pickled or stage.file.endswith(PICKLE_SUFFIXES):
                modules.add("cloudpickle")
        image = dict(self.options.get("image") or {})
        image.setdefault("repository", f"localhost:5000/{self.name}")
        if python != "3.11":
            image.setdefault("base", f"python:{python}-slim")
        data: dict[str, Any] = {"name": self.name, "python": python, "hardware": self.hardware, "models": models}
        data["requirements"] = requirements(list(self.options.get("requirements") or []), modules, self.target)
        data.update({key: value for key, value in self.options.items() if key not in ("python", "requirements", "image")})
        data["image"] = image
        for case in self.options.get("tests") or []:
            for name in (case.get("form") or {}).get("files", []) if isinstance(case, dict) else []:
                self.copy(name)
        if "tests" not in self.options and example is not None:
            data["tests"] = [self.example_case(example)]
        text = yaml.safe_dump(json.loads(json.dumps(data)), sort_keys=False, allow_unicode=True, width=120)
        path.write_text(f"{MARK} from Python; `conduit validate` checks it, `conduit build` builds it.\n"
                        f"# Saving again rewrites it; once you edit it by hand, build it with the CLI.\n{text}")
        return path

    def stage(self, stage: FlowStage, index: int, hooks: HookExport) -> dict[str, Any]:
        file_part = stage.file.rpartition(":")[0] if stage.type == "python" else stage.file
        self.copy(file_part)
        entry: dict[str, Any] = {"type": stage.type, "file": stage.file}
        refs = {}
        for role, hook in (("pre", stage.pre), ("post", stage.post)):
            if isinstance(hook, str):
                self.copy(hook.rpartition(":")[0])
                hooks.modules |= file_imports(self.target / hook.rpartition(":")[0])
                refs[role] = hook
            elif hook is not None:
                refs[role] = hooks.reference(hook, f"stage{index}_{role}")
        if refs:
            entry["hooks"] = refs
        if stage.options:
            entry["options"] = stage.options
        return entry

    def copy(self, relative: str) -> None:
        """A file or folder the project names, into the target when it is another folder."""
        if self.source == self.target:
            return
        source, target = self.source / relative, self.target / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif source.is_file():
            shutil.copyfile(source, target)

    def example_case(self, example: Example) -> dict[str, Any]:
        """The first run as `tests:` case: `json:` without files, else `form:` with samples/."""
        data: Any = {"data": example.data, "parameters": example.parameters} if example.parameters else example.data
        if not example.files:
            return {"name": "first-run", "json": data}
        names = []
        for index, (name, content) in enumerate(example.files):
            path = self.target / "samples" / (Path(name).name or f"file{index}")
            if path.exists() and path.read_bytes() != content:
                path = path.with_name(f"{path.stem}-{index}{path.suffix}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            names.append(path.relative_to(self.target).as_posix())
        return {"name": "first-run", "form": {"data": data, "files": names}}


def requirements(given: list[str], modules: set[str], root: Path) -> list[str]:
    """`given`, then a pinned `dist==version` for each module's installed distribution that
    neither they nor the server runtime name. Standard-library and project modules need none."""
    named = {canonical(line) for line in given}
    named |= {canonical(line) for line in RUNTIME_REQUIREMENTS.read_text().splitlines() if line.strip() and not line.startswith("#")}
    providers = metadata.packages_distributions()
    inferred = {}
    for module in modules:
        if module in sys.stdlib_module_names or module.startswith("conduit") or (root / f"{module}.py").exists() \
                or (root / module).is_dir():
            continue
        for dist in providers.get(module, [])[:1]:
            if canonical(dist) not in named:
                inferred[canonical(dist)] = f"{dist}=={metadata.version(dist)}"
    return given + [inferred[name] for name in sorted(inferred)]


__all__ = ["PICKLED_MODULE", "ProjectWriter", "requirements"]

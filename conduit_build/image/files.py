"""Which files of the project go into the image, the way Docker and Cog users expect:
the whole project folder, minus

    VCS, virtual environments, caches, .env files       (DEFAULT_IGNORED)
    the patterns of .dockerignore and .conduitignore     (Docker's syntax; `!` re-includes)
    Conduit's own outputs: a `conduit render -o` folder (it holds OUTPUT_MARKER) and
      deploy.kubernetes.out
    the build's inputs, which never reach the runtime stage: conduit.yaml (it may name
      index URLs), conduit.lock, requirements_file, image.dockerfile, image.find_links, image.ca_bundle

The files named by `models:` are the model layer; everything else is the code layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..config import Project
from ..config.schema import DIRECTORY_TYPES
from . import engine

IGNORE_FILES = (".dockerignore", ".conduitignore")
OUTPUT_MARKER = ".conduit-output"  # written into every folder `conduit render -o` fills
DEFAULT_IGNORED = (
    "**/.git", "**/.hg", "**/.svn", "**/.bzr",
    "**/.venv", "**/venv", "**/__pycache__", "**/*.pyc", "**/*.pyo",
    "**/.mypy_cache", "**/.pytest_cache", "**/.ruff_cache", "**/.ipynb_checkpoints", "**/.tox", "**/.nox",
    "**/node_modules", "**/.DS_Store",
    "**/.env", "**/.env.*",  # where secrets usually live; `!.env.example` in .conduitignore brings one back
)


@dataclass(frozen=True)
class Selection:
    model: tuple[tuple[str, Path], ...]  # (path relative to the project, file)
    code: tuple[tuple[str, Path], ...]


def select(project: Project) -> Selection:
    root = project.root
    named_models = model_files(project)
    model_paths = {relative for relative, _ in named_models}
    model_dirs = [PurePosixPath(s.file) for s in project.config.models if s.type in DIRECTORY_TYPES]
    outside = build_inputs(project)
    code: dict[str, Path] = {}
    for relative in engine.unignored(root, [*DEFAULT_IGNORED, *user_patterns(root)]):
        path = PurePosixPath(relative)
        if relative in model_paths or any(path.is_relative_to(d) for d in model_dirs):
            continue
        if any(path == p or path.is_relative_to(p) for p in outside) or produced_here(root, path):
            continue
        full = root / relative
        if full.is_file() and (not full.is_symlink() or stays_inside(root, full)):
            code[relative] = full
    for case in project.config.tests:  # what the warm-up uploads must be there, ignored or not
        for name in case.form.files if case.form else []:
            code.setdefault(PurePosixPath(name).as_posix(), root / name)
    return Selection(tuple(sorted(named_models)), tuple(sorted(code.items())))


def user_patterns(root: Path) -> list[str]:
    patterns = []
    for name in IGNORE_FILES:
        path = root / name
        if path.is_file():
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            patterns += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return patterns


def build_inputs(project: Project) -> list[PurePosixPath]:
    config = project.config
    named = [project.path.name, *IGNORE_FILES, "conduit.lock", config.requirements_file, config.image.dockerfile,
             config.image.find_links, config.image.ca_bundle, config.deploy.kubernetes.out]
    return [PurePosixPath(Path(name).as_posix()) for name in named if name]


def produced_here(root: Path, path: PurePosixPath) -> bool:
    """Inside a folder `conduit render -o` wrote, or a virtual environment (by its pyvenv.cfg)."""
    folder = root
    for part in path.parts[:-1]:
        folder = folder / part
        if (folder / OUTPUT_MARKER).is_file() or (folder / "pyvenv.cfg").is_file():
            return True
    return False


def stays_inside(root: Path, path: Path) -> bool:
    resolved = path.resolve()
    return resolved.is_file() and resolved.is_relative_to(root)


def model_files(project: Project) -> list[tuple[str, Path]]:
    files = []
    for stage in project.config.models:
        if stage.type == "python":
            continue  # model.py is code
        path = project.root / stage.file
        if stage.type in DIRECTORY_TYPES or path.is_dir():
            files += [(p.relative_to(project.root).as_posix(), p) for p in sorted(path.rglob("*"))
                      if p.is_file() and "__pycache__" not in p.parts]
        else:
            files.append((Path(stage.file).as_posix(), path))
    return sorted(set(files))


__all__ = ["OUTPUT_MARKER", "Selection", "select"]

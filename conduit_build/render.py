"""conduit.yaml → a deterministic build context and its content hash (DESIGN §4).

The context holds only what the image needs:

    Dockerfile, .dockerignore
    main.py                 the server's entry point
    requirements.txt        the user's requirements + the runtime's locked pins
    conduit_runtime/        the server runtime, copied as is
    model/                  the model files named by `models:`
    code/                   hooks and other Python files, and files `tests:` uploads
    conduit.json            the resolved config the server reads
    build/                  builder-stage inputs (CA bundle, find-links wheels)

The same inputs give byte-identical files and the same hash, whatever the order
files were created in or their mtimes: the hash covers sorted paths and contents
only, and the tar is written with fixed owners, modes and times. Secrets never
enter it: index URLs travel as build arguments, the API key only at run time.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import conduit_runtime

from .config import Project
from .errors import ConduitError
from .schema import DIRECTORY_TYPES
from .templates import render as render_template

RUNTIME_DIR = Path(conduit_runtime.__file__).resolve().parent
SKIPPED_DIRS = {"__pycache__", ".git", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
GPU_TORCH_INDEX = "https://download.pytorch.org/whl/cu126"
Source = bytes | Path


@dataclass(frozen=True)
class PipSettings:
    """Where pip looks in the builder stage; from conduit.yaml `image:` or CONDUIT_* variables."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: Path | None = None
    ca_bundle: Path | None = None

    @classmethod
    def of(cls, project: Project, environ: dict[str, str] | None = None) -> PipSettings:
        env = os.environ if environ is None else environ
        image = project.config.image
        extra = env.get("CONDUIT_PIP_EXTRA_INDEX_URL", "").split() or image.extra_index_urls
        links = env.get("CONDUIT_PIP_FIND_LINKS") or image.find_links
        bundle = env.get("CONDUIT_CA_BUNDLE") or image.ca_bundle
        return cls(
            index_url=env.get("CONDUIT_PIP_INDEX_URL") or image.index_url,
            extra_index_urls=tuple(extra),
            find_links=(project.root / links) if links else None,
            ca_bundle=(project.root / bundle) if bundle else None,
        )

    def build_args(self) -> dict[str, str]:
        """Passed to the builder stage as ARGs: they may carry credentials, so never files."""
        args = {}
        if self.index_url:
            args["PIP_INDEX_URL"] = self.index_url
        if self.extra_index_urls:
            args["PIP_EXTRA_INDEX_URL"] = " ".join(self.extra_index_urls)
        return args


@dataclass(frozen=True)
class DockerfileContext:
    """Everything the Dockerfile template decides on; it only reads these."""

    name: str
    base: str
    port: int
    gpu: bool
    system_packages: tuple[str, ...]
    build_packages: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    pip_args: str
    ca_bundle: bool
    find_links: bool
    model_files: bool  # is there a model/ folder to copy (python models have none)
    code_files: bool  # is there a code/ folder to copy


@dataclass
class BuildContext:
    files: dict[str, Source] = field(default_factory=dict)
    build_args: dict[str, str] = field(default_factory=dict)
    resolved_config: str = ""

    hash: str = ""  # set once rendering is complete: the files as they were then

    def seal(self) -> BuildContext:
        digest = hashlib.sha256()
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + file_digest(self.files[path]) + b"\n")
        self.hash = digest.hexdigest()
        return self

    def labels(self) -> dict[str, str]:
        return {"conduit.config": self.resolved_config, "conduit.context-hash": self.hash}

    def write(self, out: Path) -> None:
        if out.exists():
            shutil.rmtree(out)
        for path in sorted(self.files):
            target = out / path
            target.parent.mkdir(parents=True, exist_ok=True)
            source = self.files[path]
            if isinstance(source, Path):
                shutil.copyfile(source, target)
            else:
                target.write_bytes(source)

    def tar(self) -> io.BytesIO:
        """The context as Docker receives it: sorted, owned by root, mode 0644, time 0."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for path in sorted(self.files):
                source = self.files[path]
                info = tarfile.TarInfo(path)
                info.mode, info.mtime, info.uid, info.gid = 0o644, 0, 0, 0
                if isinstance(source, Path):
                    info.size = source.stat().st_size
                    with source.open("rb") as handle:
                        archive.addfile(info, handle)
                else:
                    info.size = len(source)
                    archive.addfile(info, io.BytesIO(source))
        buffer.seek(0)
        return buffer


def file_digest(source: Source) -> bytes:
    if isinstance(source, bytes):
        return hashlib.sha256(source).digest()
    with source.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


def render(project: Project, pip: PipSettings | None = None) -> BuildContext:
    pip = pip or PipSettings.of(project)
    config = project.config
    context = BuildContext(build_args=pip.build_args())
    context.resolved_config = resolved_yaml(project)
    files = context.files
    requirements = user_requirements(project)
    files["requirements.txt"] = requirements_text(requirements, config.hardware.gpu).encode()
    for path in sorted(RUNTIME_DIR.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".txt") and "__pycache__" not in path.parts:
            files[f"conduit_runtime/{path.relative_to(RUNTIME_DIR).as_posix()}"] = path
    for relative, source in model_files(project):
        files[f"model/{relative}"] = source
    for relative, source in code_files(project):
        files.setdefault(f"code/{relative}", source)
    files["conduit.json"] = (json.dumps(project.runtime_spec(), indent=2, sort_keys=True) + "\n").encode()
    if pip.ca_bundle:
        files["build/ca-bundle.crt"] = existing(pip.ca_bundle, "CA bundle")
    if pip.find_links:
        for wheel in sorted(existing(pip.find_links, "find-links folder").iterdir()):
            if wheel.is_file():
                files[f"build/find-links/{wheel.name}"] = wheel
    files[".dockerignore"] = render_template("dockerignore.j2").encode()
    ctx = dockerfile_context(project, requirements, pip, has_model=any(p.startswith("model/") for p in files),
                             has_code=any(p.startswith("code/") for p in files))
    own = config.image.dockerfile  # the user's template, extending ours block by block
    files["Dockerfile"] = render_template(own or "Dockerfile.j2", project.root if own else None, ctx=ctx).encode()
    files["main.py"] = render_template("main.py.j2", ctx=ctx).encode()
    return context.seal()


def existing(path: Path, what: str) -> Path:
    if not path.exists():
        raise ConduitError(f"the {what} {path} does not exist")
    return path


def dockerfile_context(project: Project, requirements: list[str], pip: PipSettings, has_model: bool,
                       has_code: bool) -> DockerfileContext:
    config = project.config
    gpu = config.hardware.gpu
    env = dict(sorted(config.env.items()))
    if gpu:
        env.update(NVIDIA_VISIBLE_DEVICES="all", NVIDIA_DRIVER_CAPABILITIES="compute,utility")
    torch_index = GPU_TORCH_INDEX if gpu else CPU_TORCH_INDEX
    pip_args = f"--extra-index-url {torch_index} " if any(requirement_name(r) == "torch" for r in requirements) else ""
    return DockerfileContext(
        name=config.name,
        base=config.image.base,
        port=config.server.port,
        gpu=gpu,
        system_packages=tuple(config.system_packages),
        # The builder gets them too: pip may compile a wheel against their headers and libraries.
        build_packages=tuple(config.system_packages),
        env=tuple((name, json.dumps(value)) for name, value in env.items()),
        pip_args=pip_args,
        ca_bundle=pip.ca_bundle is not None,
        find_links=pip.find_links is not None,
        model_files=has_model,
        code_files=has_code,
    )


# -- requirements ---------------------------------------------------------------

# CPU wheel → GPU wheel, for libraries that publish them under another name.
GPU_NAMES = {"onnxruntime": "onnxruntime-gpu", "xgboost-cpu": "xgboost"}
CPU_NAMES = {value: key for key, value in GPU_NAMES.items()}


def requirement_name(line: str) -> str:
    return re.split(r"[\s<>=!~;\[@]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")


def user_requirements(project: Project) -> list[str]:
    config = project.config
    lines = list(config.requirements)
    if config.requirements_file:
        text = (project.root / config.requirements_file).read_text()
        lines += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return lines


def requirements_text(requirements: list[str], gpu: bool) -> str:
    """The user's requirements for the target, then the runtime's locked pins."""
    renames = GPU_NAMES if gpu else CPU_NAMES
    lines = []
    for line in requirements:
        name = requirement_name(line)
        lines.append(renames[name] + line.strip()[len(name):] if name in renames else line.strip())
    runtime = (RUNTIME_DIR / "requirements.txt").read_text()
    target = "GPU" if gpu else "CPU"
    return f"# {target} target: the model's requirements from conduit.yaml\n" + "\n".join(lines) + "\n" + runtime


# -- project files ----------------------------------------------------------------


def model_files(project: Project) -> list[tuple[str, Path]]:
    files = []
    for stage in project.config.models:
        if stage.type == "python":
            continue  # model.py is code
        path = project.root / stage.file
        if stage.type in DIRECTORY_TYPES or path.is_dir():
            files += [(p.relative_to(project.root).as_posix(), p) for p in walk(path)]
        else:
            files.append((Path(stage.file).as_posix(), path))
    return files


def code_files(project: Project) -> list[tuple[str, Path]]:
    """Every Python file of the project (hooks import their neighbours), and test uploads."""
    model_dirs = [project.root / s.file for s in project.config.models if s.type in DIRECTORY_TYPES]
    files = [
        (p.relative_to(project.root).as_posix(), p)
        for p in walk(project.root)
        if p.suffix == ".py" and not any(p.is_relative_to(d) for d in model_dirs)
    ]
    for case in project.config.tests:
        for name in case.form.files if case.form else []:
            files.append((Path(name).as_posix(), project.root / name))
    return sorted(set(files))


def walk(folder: Path) -> list[Path]:
    found = []
    for path in sorted(folder.rglob("*")):
        if any(part in SKIPPED_DIRS or part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.is_file():
            found.append(path)
    return found


def resolved_yaml(project: Project) -> str:
    data = project.config.model_dump(mode="json", by_alias=True, exclude={"image": {"index_url"}})
    return yaml.safe_dump(data, sort_keys=True)

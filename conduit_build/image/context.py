"""conduit.yaml → a deterministic build context and its content hash (DESIGN §4).

The context holds only what the image needs:

    Dockerfile, .dockerignore
    main.py                 the server's entry point
    conduit.lock            the project's lock, installed as is (hashes checked), when there is one;
    requirements.txt        else the user's requirements + the runtime's pins, resolved in the
    lock-header.txt         builder into a lock of the same format (its header from here)
    conduit_runtime/        the server runtime, copied as is
    model/                  the model files named by `models:` and the files of models[i].weights
                            (with image.weights: separate, in their place, links into the weights
                            tree the runtime mounts: weights.py)
    code/                   the rest of the project, as files.py selects it (never the weights)
    conduit.json            the resolved config the server reads
    build/                  builder-stage inputs (CA bundle, find-links wheels)

The same inputs give byte-identical files and the same hash, whatever the order
files were created in or their mtimes: the hash covers sorted paths and contents
only, and the tar is written with fixed owners, modes and times, spooled to a
temporary file (a 2 GB model never sits in memory). Secrets never enter it:
index URLs travel as build arguments, the API key only at run time, and the
`conduit.config` label is built from an allow-list of keys.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from ..config import Project
from ..errors import ConduitError, UsageError
from ..templates import render as render_template
from .files import OUTPUT_MARKER, select
from .lockfile import LOCK_NAME, LockFile, lock_inputs, lock_path
from .pip import PipSettings
from .requirements import RUNTIME_DIR, pip_args, user_requirements
from .uv import UV_IMAGE, UV_IMAGE_ARG, pip_install_uv
from .weights import is_weights_file, separate, weight_paths, weights_repository


@dataclass(frozen=True)
class Symlink:
    """A symbolic link entry of the context (image.weights: separate), pointing at `target`."""

    target: str


Source = bytes | Path | Symlink
WEIGHTS_ACTIVE = "/tmp/conduit-weights-active"  # the runtime points this link at a verified weights tree
INSTALLED_LABEL = "conduit.installed-digest"  # sha256 of the installed set: names, versions, hashes
# What the `conduit.config` label shows: keys that cannot carry a credential. Index URLs,
# requirements (a URL may hold a token), the requirements file and Docker hosts stay out.
LABELLED: dict[str, Any] = {
    "name": True, "python": True, "hardware": True, "models": True, "system_packages": True, "env": True,
    "server": True, "tests": True, "image": {"repository", "base"},
}


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
    uv_image: str  # the engine's helper image holding the pinned uv (uv.py), by tag
    uv_image_arg: str  # the build argument by which `conduit build` names it by its recorded id
    build_arg_names: tuple[str, ...]  # the index settings given to this build, declared as ARGs
    locked: bool  # install conduit.lock as is; else resolve requirements.txt in the builder
    single_stage: bool  # locked, and no index setting, CA bundle or find-links: no builder stage
    uv_install: str  # the shell that installs the pinned uv by wheel hash, for one single-stage RUN
    ca_bundle: bool
    find_links: bool
    model_files: bool  # is there a model/ folder to copy (python models have none)
    weights_separate: bool  # model/ holds links to the weights tree, not the weights
    code_files: bool  # is there a code/ folder to copy


@dataclass
class BuildContext:
    files: dict[str, Source] = field(default_factory=dict)
    build_args: dict[str, str] = field(default_factory=dict)
    resolved_config: str = ""
    installed_digest: str = ""  # of the installed set, when a lock says it before the build

    hash: str = ""  # set once rendering is complete: the files as they were then

    def seal(self) -> BuildContext:
        digest = hashlib.sha256()
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + file_digest(self.files[path]) + b"\n")
        self.hash = digest.hexdigest()
        return self

    def labels(self) -> dict[str, str]:
        labels = {"conduit.config": self.resolved_config, "conduit.context-hash": self.hash}
        if self.installed_digest:
            labels[INSTALLED_LABEL] = self.installed_digest
        return labels

    def write(self, out: Path) -> None:
        """Write the context into `out`, replacing an earlier context there (never other files):
        into a fresh folder beside it first, so a failure leaves the old one whole."""
        if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / OUTPUT_MARKER).is_file())):
            raise UsageError(f"{out} exists and is not a folder `conduit render -o` wrote", "name a new or empty folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
        try:
            for path in sorted(self.files):
                target = staging / path
                target.parent.mkdir(parents=True, exist_ok=True)
                source = self.files[path]
                if isinstance(source, Symlink):
                    os.symlink(source.target, target)
                elif isinstance(source, Path):
                    shutil.copyfile(source, target)
                else:
                    target.write_bytes(source)
            (staging / OUTPUT_MARKER).write_text("written by `conduit render -o`; never part of a build context\n")
            if out.exists():
                shutil.rmtree(out)
            staging.rename(out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def tar(self) -> IO[bytes]:
        """The context as Docker receives it (sorted, owned by root, mode 0644, time 0), spooled
        to a temporary file at position 0; closing it deletes it."""
        spool = tempfile.TemporaryFile(prefix="conduit-context-")  # noqa: SIM115 (the caller closes it)
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for path in sorted(self.files):
                source = self.files[path]
                info = tarfile.TarInfo(path)
                info.mode, info.mtime, info.uid, info.gid = 0o644, 0, 0, 0
                if isinstance(source, Symlink):
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, source.target, 0o777
                    archive.addfile(info)
                elif isinstance(source, Path):
                    info.size = source.stat().st_size
                    with source.open("rb") as handle:
                        archive.addfile(info, handle)
                else:
                    info.size = len(source)
                    archive.addfile(info, io.BytesIO(source))
        spool.seek(0)
        return spool


def file_digest(source: Source) -> bytes:
    if isinstance(source, Symlink):  # the link's target, never what it points at
        return hashlib.sha256(b"\0symlink\0" + source.target.encode()).digest()
    if isinstance(source, bytes):
        return hashlib.sha256(source).digest()
    with source.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


def render(project: Project, pip: PipSettings | None = None) -> BuildContext:
    pip = pip or PipSettings.of(project)
    config = project.config
    context = BuildContext(build_args=pip.build_args(), resolved_config=labelled_yaml(project))
    files = context.files
    requirements = user_requirements(project)
    inputs = lock_inputs(project, pip)
    lock_file = lock_path(project)
    lock = LockFile.read(lock_file) if lock_file.is_file() else None
    if lock is not None:
        files[LOCK_NAME] = lock.text().encode()
        context.installed_digest = lock.installed_digest()
    else:
        files["requirements.txt"] = inputs.requirements.encode()
        files["lock-header.txt"] = inputs.header().encode()
    for path in sorted(RUNTIME_DIR.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".txt") and "__pycache__" not in path.parts:
            files[f"conduit_runtime/{path.relative_to(RUNTIME_DIR).as_posix()}"] = path
    selection = select(project)
    model: list[tuple[str, Source]] = list(selection.model)
    code: list[tuple[str, Source]] = list(selection.code)
    spec = project.runtime_spec()
    if separate(project):
        model, code = weights_links(project), [(p, s) for p, s in code if not is_weights_file(project, p)]
        spec = {**spec, "weights": weights_spec(project)}
    else:
        model, code = bundled_weights(project, model, code)
    files.update((f"model/{relative}", source) for relative, source in model)
    files.update((f"code/{relative}", source) for relative, source in code)
    files["conduit.json"] = (json.dumps(spec, indent=2, sort_keys=True) + "\n").encode()
    if pip.ca_bundle:
        files["build/ca-bundle.crt"] = existing(pip.ca_bundle, "CA bundle")
    if pip.find_links:
        for wheel in sorted(existing(pip.find_links, "find-links folder").iterdir()):
            if wheel.is_file():
                files[f"build/find-links/{wheel.name}"] = wheel
    files[".dockerignore"] = render_template("dockerignore.j2").encode()
    ctx = dockerfile_context(project, requirements, pip, bool(model), bool(code), lock is not None)
    own = config.image.dockerfile  # the user's template, extending ours block by block
    files["Dockerfile"] = render_template(own or "Dockerfile.j2", project.root if own else None, ctx=ctx).encode()
    files["main.py"] = render_template("main.py.j2", ctx=ctx).encode()
    return context.seal()


def weights_links(project: Project) -> list[tuple[str, Source]]:
    """image.weights: separate: model/ holds, in the place of each weights path P, a link
    /app/P → WEIGHTS_ACTIVE/models/P (absolute), and code/ no weights file. What the context
    holds then depends on the weights' paths, never on their contents: a retrain is the same
    image."""
    return [(path, Symlink(f"{WEIGHTS_ACTIVE}/models/{path}")) for path in weight_paths(project)]


def bundled_weights(project: Project, model: list[tuple[str, Source]],
                    code: list[tuple[str, Source]]) -> tuple[list[tuple[str, Source]], list[tuple[str, Source]]]:
    """image.weights: bundled: the files of models[i].weights (a python model's weights, a
    tokenizer folder) join the model files in model/, the layer before code/: a hook edit then
    rebuilds and re-sends the code layer only. The image holds the same files at the same paths
    either way; only the layer they are in changes. Files the code selection leaves out (ignored,
    build inputs) stay out."""
    weights = [(path, source) for path, source in code if is_weights_file(project, path)]
    if not weights:
        return model, code
    return sorted([*model, *weights], key=lambda entry: entry[0]), [(path, source) for path, source in code if not is_weights_file(project, path)]


def weights_spec(project: Project) -> dict[str, Any]:
    """conduit.json's `weights`: the mode and the paths, never contents or digests."""
    return {"mode": "separate", "paths": weight_paths(project)}


def existing(path: Path, what: str) -> Path:
    if not path.exists():
        raise ConduitError(f"the {what} {path} does not exist")
    return path


def dockerfile_context(project: Project, requirements: list[str], pip: PipSettings, has_model: bool,
                       has_code: bool, locked: bool = False) -> DockerfileContext:
    config = project.config
    gpu = config.hardware.gpu
    env = dict(sorted(config.env.items()))
    if gpu:
        env.update(NVIDIA_VISIBLE_DEVICES="all", NVIDIA_DRIVER_CAPABILITIES="compute,utility")
    return DockerfileContext(
        name=config.name,
        base=config.image.base,  # python:<python>-slim unless set (config.schema)
        port=config.server.port,
        gpu=gpu,
        system_packages=tuple(config.system_packages),
        # The builder gets them too: pip may compile a wheel against their headers and libraries.
        build_packages=tuple(config.system_packages),
        env=tuple((name, json.dumps(value)) for name, value in env.items()),
        pip_args=pip_args(requirements, gpu, pip.find_links),
        uv_image=UV_IMAGE,
        uv_image_arg=UV_IMAGE_ARG,
        build_arg_names=tuple(sorted(pip.build_args())),
        locked=locked,
        single_stage=locked and not (pip.build_args() or pip.ca_bundle or pip.find_links),
        uv_install=pip_install_uv("/tmp/uv"),
        ca_bundle=pip.ca_bundle is not None,
        find_links=pip.find_links is not None,
        model_files=has_model,
        weights_separate=separate(project),
        code_files=has_code,
    )


def labelled_yaml(project: Project) -> str:
    """The config for the `conduit.config` label: only the keys of LABELLED (an allow-list)."""
    data = project.config.model_dump(mode="json", by_alias=True)
    shown = {key: data[key] if keep is True else {k: v for k, v in data[key].items() if k in keep}
             for key, keep in LABELLED.items()}
    # The weights keys only where they say something: a bundled project's label stays as it was.
    for stage in shown["models"]:
        if not stage["weights"]:
            del stage["weights"]
    if separate(project):
        shown["image"].update(weights="separate", weights_repository=weights_repository(project))
    return yaml.safe_dump(shown, sort_keys=True)

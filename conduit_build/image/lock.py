"""`conduit lock`: resolve the image's full package set with uv, for the image's platform
whatever the host's, and write conduit.lock (lockfile.py has its format); or take the set an
image installed (`--from-image`), which every Conduit image keeps at INSTALLED_PATH.

uv gets the same indexes, find-links and CA bundle as the builder stage; the credentials in
them stay in its arguments and environment, never in the lock.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..config import Project
from ..errors import ConduitError, UsageError
from . import engine
from .lockfile import PLATFORM, LockFile, LockInputs, lock_inputs, lock_path, staleness
from .pip import PipSettings
from .requirements import CPU_TORCH_FIX, cpu_torch_unavailable, pip_args, user_requirements
from .uv import uv_binary

INSTALLED_PATH = "/opt/venv/conduit.lock"  # in every image: the lock its packages were installed from


@dataclass(frozen=True)
class Locked:
    path: Path
    lock: LockFile
    changed: bool  # the file's pins differ from what was there before


@dataclass(frozen=True)
class LockStatus:
    path: Path
    present: bool
    stale: list[str]  # why it no longer fits conduit.yaml; empty when current (or absent)


def lock_project(project: Project, upgrade: list[str] | None = None, environ: dict[str, str] | None = None) -> Locked:
    """Resolve and write conduit.lock. The pins of an existing lock are kept where they still
    fit, unless `upgrade` is [] (every package) or names the packages to upgrade."""
    pip = PipSettings.of(project, environ)
    inputs = lock_inputs(project, pip)
    path = lock_path(project)
    before = LockFile.read(path) if path.is_file() else None
    body = resolve(project, pip, inputs, before, upgrade, environ)
    lock = LockFile.of(inputs, body)
    changed = before is None or before.installed_digest() != lock.installed_digest()
    write_atomically(path, lock.text())
    return Locked(path, lock, changed)


def resolve(project: Project, pip: PipSettings, inputs: LockInputs, before: LockFile | None,
            upgrade: list[str] | None, environ: dict[str, str] | None = None) -> str:
    env = dict(os.environ if environ is None else environ)
    args = ["pip", "compile", "requirements.txt", "--output-file", "conduit.lock", "--generate-hashes", "--no-header",
            "--python-version", inputs.python, "--python-platform", PLATFORM, "--quiet"]
    if pip.index_url:
        args += ["--index-url", pip.index_url]
    for url in pip.extra_index_urls:
        args += ["--extra-index-url", url]
    args += pip_args(user_requirements(project), inputs.hardware == "gpu", pip.find_links).split()
    if pip.find_links:
        args += ["--find-links", str(pip.find_links)]
    if pip.ca_bundle:
        env["SSL_CERT_FILE"] = str(pip.ca_bundle)
    if upgrade == []:
        args.append("--upgrade")
    for name in upgrade or []:
        args += ["--upgrade-package", name]
    with tempfile.TemporaryDirectory(prefix="conduit-lock-") as work:
        (Path(work) / "requirements.txt").write_text(inputs.requirements)
        if before is not None:  # uv keeps the pins of the output file it finds, where they still fit
            (Path(work) / "conduit.lock").write_text(before.body)
        result = subprocess.run([uv_binary(), *args], cwd=work, env=env, capture_output=True, text=True, check=False)
        resolved = (Path(work) / "conduit.lock").read_text() if result.returncode == 0 else ""
        problem = None if inputs.hardware == "gpu" else cpu_torch_unavailable(result.stderr, resolved)
        if problem:
            raise ConduitError(problem, CPU_TORCH_FIX)
        if result.returncode != 0:
            raise ConduitError(f"uv could not resolve the requirements for {inputs.hardware}, python {inputs.python}:\n"
                               + result.stderr.strip(), "fix the requirements in conduit.yaml, then `conduit lock`")
        return (Path(work) / "conduit.lock").read_text()


def lock_from_image(project: Project, reference: str) -> Locked:
    """Write conduit.lock from the set the image `reference` installed."""
    client = engine.client()
    text = engine.read_file(client, reference, INSTALLED_PATH)
    if text is None:
        raise UsageError(f"{reference} holds no {INSTALLED_PATH}", "it was not built by a Conduit that records it")
    lock = LockFile.parse(text.decode(), f"{reference}:{INSTALLED_PATH}")
    inputs = lock_inputs(project)
    if (lock.python, lock.hardware) != (inputs.python, inputs.hardware):
        raise UsageError(f"{reference} is python {lock.python} on {lock.hardware}; conduit.yaml asks for "
                         f"python {inputs.python} on {inputs.hardware}", "lock from an image of this project")
    path = lock_path(project)
    before = LockFile.read(path) if path.is_file() else None
    write_atomically(path, lock.text())
    return Locked(path, lock, before is None or before.installed_digest() != lock.installed_digest())


def lock_status(project: Project, pip: PipSettings | None = None) -> LockStatus:
    path = lock_path(project)
    if not path.is_file():
        return LockStatus(path, False, [])
    return LockStatus(path, True, staleness(LockFile.read(path), lock_inputs(project, pip)))


def write_atomically(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text, encoding="utf-8")
    staging.replace(path)

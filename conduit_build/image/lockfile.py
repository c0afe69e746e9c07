"""conduit.lock: the full set of Python packages an image installs, with their hashes.

    # conduit.lock: written by `conduit lock` ... (a few lines for people)
    # target-python: 3.11
    # target-platform: x86_64-manylinux_2_36
    # target-hardware: cpu
    # requirements-digest: sha256:…     the requirements for the target (user's + runtime's)
    # indexes-digest: sha256:…          index URLs (credentials removed), find-links, torch index
    # inputs-digest: sha256:…           all of the above together
    anyio==4.16.0 \\
        --hash=sha256:…                 uv's output: one pin per package, its hashes
    …

The header says what the lock was resolved for; `staleness()` compares it with what
conduit.yaml asks for now. Nothing in it is a credential: index URLs lose their
user:password@ part before they are hashed, and URLs are never written, only digests.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..config import Project
from ..errors import ConduitError
from .pip import PipSettings
from .requirements import pip_args, requirements_text, runtime_extras, user_requirements

LOCK_NAME = "conduit.lock"
# The images' platform: python:*-slim is Debian bookworm (glibc 2.36) on x86-64.
PLATFORM = "x86_64-manylinux_2_36"
FIELDS = ("target-python", "target-platform", "target-hardware", "requirements-digest", "indexes-digest",
          "inputs-digest")
HEADER = """\
# conduit.lock: every Python package the image installs, pinned with its hashes.
# Written by `conduit lock` from conduit.yaml; commit it and do not edit it by hand.
# Update it with `conduit lock` (after changing requirements, python or hardware)
# or `conduit lock --upgrade [PACKAGE ...]`.
"""
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)")
HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


@dataclass(frozen=True)
class LockInputs:
    """What a lock is resolved from; its digests go into the header."""

    python: str
    hardware: str  # cpu | gpu
    requirements: str  # requirements.txt for the target: the user's lines, then the runtime's pins
    indexes: tuple[str, ...]  # index settings, credentials removed
    platform: str = PLATFORM

    def fields(self) -> dict[str, str]:
        requirements = digest("\n".join(line.strip() for line in self.requirements.splitlines()
                                         if line.strip() and not line.lstrip().startswith("#")))
        indexes = digest("\n".join(self.indexes))
        inputs = digest("\n".join((self.python, self.platform, self.hardware, requirements, indexes)))
        return {"target-python": self.python, "target-platform": self.platform, "target-hardware": self.hardware,
                "requirements-digest": requirements, "indexes-digest": indexes, "inputs-digest": inputs}

    def header(self) -> str:
        return HEADER + "".join(f"# {name}: {value}\n" for name, value in self.fields().items())


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: tuple[str, ...]


@dataclass(frozen=True)
class LockFile:
    fields: dict[str, str]  # the header's, as written
    body: str  # the pins, as uv wrote them

    @property
    def hardware(self) -> str:
        return self.fields["target-hardware"]

    @property
    def python(self) -> str:
        return self.fields["target-python"]

    def text(self) -> str:
        return HEADER + "".join(f"# {name}: {self.fields[name]}\n" for name in FIELDS) + self.body

    def pins(self) -> list[Pin]:
        pins: list[Pin] = []
        for line in self.body.splitlines():
            match = PIN.match(line.strip())
            if match:
                pins.append(Pin(canonical(match.group(1)), match.group(2), tuple(HASH.findall(line))))
            elif pins and line.strip().startswith("--hash"):
                last = pins[-1]
                pins[-1] = Pin(last.name, last.version, (*last.hashes, *HASH.findall(line)))
        return pins

    def installed_digest(self) -> str:
        """The digest of the installed set (names, versions, hashes), whatever the comments or order."""
        return digest("\n".join(f"{p.name}=={p.version} {' '.join(sorted(p.hashes))}"
                                for p in sorted(self.pins(), key=lambda p: p.name)))

    @classmethod
    def of(cls, inputs: LockInputs, body: str) -> LockFile:
        return cls(inputs.fields(), body if body.endswith("\n") else body + "\n")

    @classmethod
    def parse(cls, text: str, where: str = LOCK_NAME) -> LockFile:
        fields: dict[str, str] = {}
        body: list[str] = []
        for line in text.splitlines(keepends=True):
            match = re.match(r"^# ([a-z-]+): (\S+)\s*$", line)
            if match and match.group(1) in FIELDS and not body:
                fields[match.group(1)] = match.group(2)
            elif body or not line.startswith("#"):
                body.append(line)
        missing = [name for name in FIELDS if name not in fields]
        if missing:
            raise ConduitError(f"{where}: not a lock written by `conduit lock` (no {', '.join(missing)} in its header)",
                               "run `conduit lock` to write it again")
        lock = cls(fields, "".join(body))
        unhashed = [p.name for p in lock.pins() if not p.hashes]
        if unhashed:
            raise ConduitError(f"{where}: {', '.join(unhashed)} without --hash", "run `conduit lock` to write it again")
        return lock

    @classmethod
    def read(cls, path: Path) -> LockFile:
        return cls.parse(path.read_text(encoding="utf-8"), str(path))


def lock_inputs(project: Project, pip: PipSettings | None = None) -> LockInputs:
    pip = pip or PipSettings.of(project)
    config = project.config
    requirements = user_requirements(project)
    indexes = [f"--index-url {without_credentials(pip.index_url or 'https://pypi.org/simple')}"]
    indexes += [f"--extra-index-url {without_credentials(url)}" for url in pip.extra_index_urls]
    torch_index = pip_args(requirements, config.hardware.gpu, pip.find_links).strip()  # PyTorch's CPU or CUDA index
    indexes += [torch_index] if torch_index else []
    if pip.find_links and pip.find_links.is_dir():
        indexes += [f"--find-links {name}" for name in sorted(p.name for p in pip.find_links.iterdir() if p.is_file())]
    return LockInputs(python=config.python, hardware="gpu" if config.hardware.gpu else "cpu",
                      requirements=requirements_text(requirements, config.hardware.gpu, runtime_extras(project)),
                      indexes=tuple(index.strip() for index in indexes))


def staleness(lock: LockFile, inputs: LockInputs) -> list[str]:
    """Why `lock` no longer fits `inputs`, one reason a line; empty when it is current."""
    now = inputs.fields()
    if lock.fields["inputs-digest"] == now["inputs-digest"]:
        return []
    reasons = []
    if lock.python != inputs.python:
        reasons.append(f"python is {inputs.python} in conduit.yaml, the lock is for {lock.python}")
    if lock.hardware != inputs.hardware:
        reasons.append(f"hardware is {inputs.hardware} in conduit.yaml, the lock is for {lock.hardware}")
    if lock.fields["target-platform"] != inputs.platform:
        reasons.append(f"the image platform is {inputs.platform}, the lock is for {lock.fields['target-platform']}")
    if lock.fields["requirements-digest"] != now["requirements-digest"]:
        reasons.append("the requirements changed since the lock was written")
    if lock.fields["indexes-digest"] != now["indexes-digest"]:
        reasons.append("the package indexes or find-links changed since the lock was written")
    return reasons or ["its inputs digest does not match (edited by hand?)"]


def lock_path(project: Project) -> Path:
    return project.root / LOCK_NAME


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))

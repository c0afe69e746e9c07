"""conduit.lock against the real engine and PyPI: a locked build installs exactly the lock,
a tampered hash fails it, a stale lock is refused under --locked, and an image built
without a lock records what it installed, from which a lock can be written."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import Built, build, conduit

from conduit_build.image.context import INSTALLED_LABEL
from conduit_build.image.lockfile import LockFile

pytestmark = pytest.mark.docker

INSTALLED = ("import importlib.metadata as m, json; "
             "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(engine: Any, tag: str) -> dict[str, str]:
    """What the image's venv holds, asked of Python inside the container (the image has no pip)."""
    output = engine.containers.run(tag, ["python3", "-c", INSTALLED], remove=True)
    return {canonical(name): version for name, version in json.loads(output).items()}


def locked_set(path: Path) -> dict[str, str]:
    return {pin.name: pin.version for pin in LockFile.read(path).pins()}


def iris(examples: Path, target: Path) -> Path:
    shutil.copytree(examples / "iris", target, ignore=shutil.ignore_patterns("__pycache__", "conduit.lock"))
    return target / "conduit.yaml"


def test_lock_then_build_installs_exactly_the_locked_set(engine: Any, examples: Path, tmp_path: Path) -> None:
    config = iris(examples, tmp_path / "iris")
    locked = conduit("lock", "-f", str(config))
    assert locked.returncode == 0, locked.stderr
    lock_file = config.parent / "conduit.lock"
    built = build(config, "--locked")
    assert installed(engine, built.tag) == locked_set(lock_file)
    image = engine.images.get(built.tag)
    assert image.attrs["Config"]["Labels"][INSTALLED_LABEL] == LockFile.read(lock_file).installed_digest()
    kept = engine.containers.run(built.tag, ["cat", "/opt/venv/conduit.lock"], remove=True)
    assert kept.decode() == lock_file.read_text()
    # requirements changed since: --locked refuses (exit 2) and builds nothing
    config.write_text(config.read_text().replace("requirements: [scikit-learn==1.9.1]",
                                                 "requirements: [scikit-learn==1.9.1, pillow]"))
    stale = conduit("build", "--locked", "-f", str(config))
    assert stale.returncode == 2
    assert stale.stderr.splitlines() == [
        f"error: --locked: {lock_file} is stale: the requirements changed since the lock was written "
        "(run `conduit lock` and commit conduit.lock)"]
    assert "[1/" not in stale.stderr


def test_tampered_hash_fails_the_build_with_one_line(engine: Any, examples: Path, tmp_path: Path) -> None:
    config = iris(examples, tmp_path / "iris")
    assert conduit("lock", "-f", str(config)).returncode == 0
    lock_file = config.parent / "conduit.lock"
    text = lock_file.read_text()
    start = text.index("\njoblib==")
    end = text.index("# via", start)
    lock_file.write_text(text[:start] + re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, text[start:end]) + text[end:])
    result = conduit("build", "--locked", "-f", str(config), "--quiet", timeout=1800)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: conduit.lock: hash mismatch for joblib==")
    assert "the lock allows sha256:000000000000…" in lines[0] and "the index served sha256:" in lines[0]


def test_image_without_lock_records_its_installed_set(engine: Any, images: dict[str, Built], examples: Path,
                                                      tmp_path: Path) -> None:
    """The examples are built without a lock: the builder resolves with uv, keeps the lock it
    installed in the venv and its digest in a label; `conduit lock --from-image` writes it out."""
    built = images["iris"]
    label = engine.images.get(built.tag).attrs["Config"]["Labels"][INSTALLED_LABEL]
    config = iris(examples, tmp_path / "iris")
    result = conduit("lock", "-f", str(config), "--from-image", built.tag)
    assert result.returncode == 0, result.stderr
    lock_file = config.parent / "conduit.lock"
    assert LockFile.read(lock_file).installed_digest() == label
    assert installed(engine, built.tag) == locked_set(lock_file)
    validated = conduit("validate", "-f", str(config))
    assert validated.returncode == 0 and "stale" not in validated.stderr  # the image's inputs are this project's
    # the lock installs the same set again, in an image labelled with the same digest
    again = build(config, "--locked")
    assert engine.images.get(again.tag).attrs["Config"]["Labels"][INSTALLED_LABEL] == label


def test_lock_from_an_image_of_another_target_is_refused(images: dict[str, Built], examples: Path, tmp_path: Path) -> None:
    config = iris(examples, tmp_path / "iris")
    config.write_text(config.read_text().replace("hardware: cpu", "hardware: gpu"))
    result = conduit("lock", "-f", str(config), "--from-image", images["iris"].tag)
    assert result.returncode == 2
    assert "is python 3.11 on cpu; conduit.yaml asks for python 3.11 on gpu" in result.stderr
    assert not (config.parent / "conduit.lock").exists()

"""The engine's uv helper image (conduit_build/image/uv.py): its build context from the host's uv
or from the pinned wheel by hash, and which helper image a build trusts (the ids it recorded)."""

from __future__ import annotations

import platform
import re
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conduit_build.config import load
from conduit_build.errors import UsageError
from conduit_build.image.context import render
from conduit_build.image.lockfile import LockFile, lock_inputs
from conduit_build.image.pip import PipSettings
from conduit_build.image.uv import (
    UV_IMAGE,
    UV_RECORD_KEEP,
    UV_VERSION,
    UV_WHEELS,
    host_uv_for_images,
    pip_install_uv,
    record_uv_image,
    recorded_uv_images,
    trusted_uv_image,
    uv_image_context,
    uv_record_path,
)


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.machine() != "x86_64",
                    reason="the host's uv runs in the images only on Linux x86-64; elsewhere pip installs it in the engine")
def test_the_helper_image_holds_the_hosts_pinned_uv_alone() -> None:
    binary = host_uv_for_images()
    assert binary is not None, "the test environment installs uv==" + UV_VERSION
    assert subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout.startswith(f"uv {UV_VERSION}")
    with uv_image_context("python:3.11-slim", binary) as spool, tarfile.open(fileobj=spool) as archive:
        members = {member.name: member for member in archive.getmembers()}
        dockerfile = archive.extractfile("Dockerfile")
        assert dockerfile is not None and dockerfile.read() == b"FROM scratch\nCOPY uv /uv\n"
    assert sorted(members) == ["Dockerfile", "uv"]
    assert members["uv"].mode == 0o755 and members["uv"].size == binary.stat().st_size
    assert f"conduit-uv:{UV_VERSION}" == UV_IMAGE


def test_without_a_usable_host_uv_pip_installs_the_pinned_uv_in_the_engine() -> None:
    """A macOS or ARM host (no binary that runs in the images): the helper image is made inside
    the engine, through the same indexes."""
    with uv_image_context("python:3.12-slim", None) as spool, tarfile.open(fileobj=spool) as archive:
        assert archive.getnames() == ["Dockerfile"]
        handle = archive.extractfile("Dockerfile")
        assert handle is not None
        dockerfile = handle.read().decode()
    assert dockerfile.startswith("FROM python:3.12-slim AS get\nARG UV_INDEX_URL\nARG UV_EXTRA_INDEX_URL\n")
    assert dockerfile.endswith("FROM scratch\nCOPY --from=get /opt/uv/bin/uv /uv\n")
    # by the pinned wheel's hash, never a bare `pip install uv==…` that any index may answer
    assert pip_install_uv("/opt/uv") in dockerfile and f"install --quiet uv=={UV_VERSION}" not in dockerfile


# -- uv by wheel hash -------------------------------------------------------------------------


def test_the_pinned_wheels_are_uv_version_for_their_machine() -> None:
    """A new UV_VERSION without new wheel rows fails here, not in a build."""
    assert {"x86_64", "aarch64"} <= set(UV_WHEELS)
    for machine, (wheel, sha256) in UV_WHEELS.items():
        assert wheel.startswith(f"uv-{UV_VERSION}-py3-none-") and wheel.endswith(".whl")
        assert re.search(rf"linux(_\d+_\d+|2014)?_{machine}\b", wheel), wheel
        assert re.fullmatch(r"[0-9a-f]{64}", sha256)


def test_the_install_picks_the_hash_of_the_machine_it_runs_on() -> None:
    """The `case` of the install, run by a real shell: this machine's wheel hash, and one line
    (exit 1) on a machine with no pinned wheel."""
    choose = pip_install_uv("/tmp/uv").split(" \\\n && ")[0]
    here = platform.machine()
    if here in UV_WHEELS:
        chosen = subprocess.run(["sh", "-c", f"{choose} && echo $uv_hash"], capture_output=True, text=True, check=True)
        assert chosen.stdout.strip() == UV_WHEELS[here][1]
    other = subprocess.run(["sh", "-c", choose.replace("$(uname -m)", "riscv64") + " && echo $uv_hash"],
                           capture_output=True, text=True, check=False)
    assert other.returncode == 1 and other.stdout == "" and other.stderr == "conduit: no pinned uv wheel for riscv64\n"


def tiny_dockerfile(root: Path, locked: bool) -> str:
    """The rendered Dockerfile of a python model, with a conduit.lock (one pin, made up: rendering
    never downloads it) or without."""
    (root / "model.py").write_text("class Model:\n    def predict(self, data):\n        return data\n")
    (root / "conduit.yaml").write_text('name: tiny\npython: "3.11"\nmodels: [{type: python, file: "model.py:Model"}]\n')
    if locked:
        loaded = load(root / "conduit.yaml")
        lock = LockFile.of(lock_inputs(loaded, PipSettings.of(loaded, {})), f"six==1.17.0 --hash=sha256:{'a' * 64}\n")
        (root / "conduit.lock").write_text(lock.text())
    return render(load(root / "conduit.yaml"), PipSettings()).files["Dockerfile"].decode()


def test_the_single_stage_layout_installs_uv_by_its_wheel_hash(tmp_path: Path) -> None:
    """A locked build with no index settings (one stage) installs uv with the base's pip from the
    pinned wheel, checked by hash, in the same RUN that checks every locked file; before, a bare
    `pip install uv==…` there trusted whatever the index served."""
    dockerfile = tiny_dockerfile(tmp_path, locked=True)
    assert UV_IMAGE not in dockerfile and "AS builder" not in dockerfile  # the helper image is not used
    install = next(run for run in dockerfile.split("\nRUN ") if "uv pip sync" in run)
    assert pip_install_uv("/tmp/uv") in install
    for _, sha256 in UV_WHEELS.values():
        assert f"uv_hash={sha256};;" in install
    assert f'echo "uv=={UV_VERSION} --hash=sha256:$uv_hash" > /tmp/uv/uv.txt' in install
    assert "pip --python /tmp/uv/bin/python install --quiet --require-hashes --only-binary=:all: -r /tmp/uv/uv.txt" in install
    assert install.count(" install ") == 1  # no other pip install, hashed or not
    assert install.index("-r /tmp/uv/uv.txt") < install.index("uv pip sync") < install.index("rm -rf /tmp/uv")


def test_the_builder_stage_names_the_helper_by_a_build_argument(tmp_path: Path) -> None:
    """Two stages: uv comes from a stage whose image is the build argument CONDUIT_UV_IMAGE
    (`conduit build` passes the recorded id), the tag its default; never `COPY --from=<tag>`."""
    dockerfile = tiny_dockerfile(tmp_path, locked=False)
    stages = dockerfile.split("\nFROM ")
    assert stages[0].endswith(f"\nARG CONDUIT_UV_IMAGE={UV_IMAGE}") and stages[1] == "$CONDUIT_UV_IMAGE AS uv"
    assert stages[2].startswith("python:3.11-slim AS builder\n") and "\nCOPY --from=uv /uv /opt/uv/bin/uv\n" in stages[2]
    assert f"--from={UV_IMAGE}" not in dockerfile


# -- which helper image a build trusts --------------------------------------------------------

GENUINE, OLDER, IMPOSTOR = (f"sha256:{c * 64}" for c in "abc")


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The record in a cache folder of this test's own (XDG_CACHE_HOME, as `conduit build` reads it)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return uv_record_path()


def test_the_record_lives_in_the_users_cache_folder_and_keeps_the_newest(record: Path) -> None:
    assert record.parent.parent.name == "cache" and not record.exists()
    assert recorded_uv_images() == []
    record_uv_image(OLDER)
    record_uv_image(GENUINE)
    record_uv_image(OLDER)  # made again: now the newest, once
    assert recorded_uv_images() == [GENUINE, OLDER]
    assert stat.S_IMODE(record.parent.stat().st_mode) == 0o700
    for n in range(UV_RECORD_KEEP + 3):
        record_uv_image(f"sha256:{n:064x}")
    assert recorded_uv_images() == [f"sha256:{n:064x}" for n in range(3, UV_RECORD_KEEP + 3)]


def test_the_record_holds_ids_of_this_helper_tag_only(record: Path) -> None:
    """Lines of another uv version's helper, or that are not `<tag> sha256:…`, count for nothing."""
    record.parent.mkdir(parents=True)
    record.write_text(f"conduit-uv:0.0.1 {IMPOSTOR}\n{UV_IMAGE} latest\ngarbage\n\n{UV_IMAGE} {GENUINE}\n")
    assert recorded_uv_images() == [GENUINE]


def test_an_unrecorded_image_under_the_tag_is_never_trusted(record: Path) -> None:
    """Whatever the tag names, only an id these builds recorded is used; with none on the engine,
    None (the helper is made again), never the impostor."""
    engine_has = {GENUINE, OLDER, IMPOSTOR}
    assert trusted_uv_image(IMPOSTOR, engine_has.__contains__) is None  # nothing recorded yet
    assert trusted_uv_image(None, engine_has.__contains__) is None
    record_uv_image(OLDER)
    record_uv_image(GENUINE)
    assert trusted_uv_image(GENUINE, engine_has.__contains__) == GENUINE
    assert trusted_uv_image(OLDER, engine_has.__contains__) == OLDER  # recorded (another engine's, or older)
    assert trusted_uv_image(IMPOSTOR, engine_has.__contains__) == GENUINE  # the newest recorded the engine has
    assert trusted_uv_image(None, engine_has.__contains__) == GENUINE
    assert trusted_uv_image(IMPOSTOR, {OLDER, IMPOSTOR}.__contains__) == OLDER
    assert trusted_uv_image(IMPOSTOR, {IMPOSTOR}.__contains__) is None


def test_a_cache_folder_that_cannot_be_written_is_one_line_with_a_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No record to read trusts nothing (the helper is made again); one that cannot be written is
    a usage error naming the file and the fix, not a traceback."""
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    assert recorded_uv_images() == [] and trusted_uv_image(GENUINE, {GENUINE}.__contains__) is None
    with pytest.raises(UsageError, match=r"cannot record the uv helper image in .*not-a-folder/conduit/uv-images\.txt") as error:
        record_uv_image(GENUINE)
    assert error.value.hint == "set XDG_CACHE_HOME to a folder you can write"

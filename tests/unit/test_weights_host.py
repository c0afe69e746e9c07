"""image/weights_host.py without an engine: which weights, which engines see this machine's folders,
the build tool's tree of an artifact (made from the store, checked, made again when it fails its
check) and what a container of a separate image is given."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_weights import python_project

from conduit_build.config import load
from conduit_build.errors import ConduitError, UsageError
from conduit_build.image.weights import CHAIN, INDEX_NAME, build_weights
from conduit_build.image.weights_host import (
    DIR_ENV,
    MOUNT,
    WEIGHTS_ENV,
    Pin,
    host_tree,
    local_engine,
    mounted,
    parse_pin,
    project_pin,
)

HEX = "ab" * 32


def test_a_pin_is_a_repository_and_a_digest() -> None:
    pin = parse_pin(f"127.0.0.1:5000/x-weights@sha256:{HEX}")
    assert (pin.digest, pin.hex, pin.folder) == (f"sha256:{HEX}", HEX, f"{MOUNT}/sha256-{HEX}")
    for bad in ("127.0.0.1:5000/x-weights:tag", f"x@sha256:{HEX[:-1]}", f"@sha256:{HEX}"):
        with pytest.raises(UsageError, match="--weights"):
            parse_pin(bad)


def test_only_a_local_engine_mounts_a_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert local_engine(None)
    assert local_engine("unix:///var/run/docker.sock")
    assert not local_engine("ssh://deploy@gpu-1") and not local_engine("tcp://10.0.0.5:2376")
    monkeypatch.setenv("DOCKER_HOST", "ssh://deploy@gpu-1")
    assert not local_engine(None)
    assert local_engine("unix:///run/docker.sock")  # deploy.docker.host wins


def test_the_tree_is_made_once_checked_and_mounted_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_CACHE_DIR", str(tmp_path / "cache"))
    project = load(python_project(tmp_path / "p"))
    pin = project_pin(project)
    assert pin.reference == f"127.0.0.1:5000/weighty-weights@{pin.digest}"
    tree = host_tree(pin)
    assert tree == tmp_path / "cache" / "weights" / "trees" / f"sha256-{pin.hex}"
    assert (tree / "models" / "weights.bin").read_bytes() == b"w" * 3000
    assert sorted(p.name for p in (tree / CHAIN).iterdir()) == ["index-layer.tar", "manifest.json"]
    made = (tree / INDEX_NAME).stat().st_ino
    assert host_tree(pin) == tree and (tree / INDEX_NAME).stat().st_ino == made  # not made again

    given = mounted(pin, tree)
    assert given.environment == {WEIGHTS_ENV: pin.reference, DIR_ENV: f"{MOUNT}/sha256-{pin.hex}"}
    assert given.volumes == {str(tree): {"bind": f"{MOUNT}/sha256-{pin.hex}", "mode": "ro"}}


def test_a_tree_that_fails_its_check_is_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_CACHE_DIR", str(tmp_path / "cache"))
    pin = project_pin(load(python_project(tmp_path / "p")))
    tree = host_tree(pin)
    (tree / "models" / "weights.bin").write_bytes(b"x" * 3000)  # same size, other bytes
    assert (host_tree(pin) / "models" / "weights.bin").read_bytes() == b"w" * 3000
    (tree / INDEX_NAME).write_text('{"files": {}}')  # an index that is not the pinned one
    assert host_tree(pin) == tree and (tree / INDEX_NAME).read_text() != '{"files": {}}'
    shutil.rmtree(tree / CHAIN)  # a tree made before trees kept their chain
    assert (host_tree(pin) / CHAIN / "manifest.json").is_file()
    assert [p.name for p in tree.parent.iterdir()] == [tree.name]  # nothing set aside is left


def test_weights_neither_built_here_nor_in_a_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ConduitError, match="names no registry"):
        host_tree(Pin(f"weighty-weights@sha256:{HEX}", f"sha256:{HEX}"))


def test_a_tree_whose_store_blob_was_tampered_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "cache" / "weights"
    artifact = build_weights(load(python_project(tmp_path / "p")), root)
    [blob] = [layer for layer in artifact.layers if layer.path == "weights.bin"]
    layer = root / "blobs" / "sha256" / blob.hex
    layer.write_bytes(layer.read_bytes().replace(b"w" * 100, b"v" * 100, 1))
    with pytest.raises(ConduitError, match="does not match its digest"):
        host_tree(Pin(artifact.pinned, artifact.digest))

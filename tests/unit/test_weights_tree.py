"""A weights tree (conduit_runtime/weights/tree.py): a layer extracts only plain files and folders
under models/ (the index alone in the last layer), and a tree verifies only when models/ holds
exactly what its conduit-weights.json lists."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from weights_artifact import tar_of

from conduit_runtime.weights import WeightsError
from conduit_runtime.weights.tree import extract_layer, verify_tree


def linked(kind: bytes, name: str, target: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, target
        tar.addfile(info)
    return out.getvalue()


@pytest.mark.parametrize(("layer", "last"), [
    (tar_of([("models/../../escape", b"x")]), False),
    (tar_of([("/etc/escape", b"x")]), False),
    (tar_of([("elsewhere/file", b"x")]), False),
    (tar_of([("conduit-weights.json", b"{}")]), False),  # the index only in the last layer
    (tar_of([("models/a", b"x")]), True),  # and nothing else there
    (linked(tarfile.SYMTYPE, "models/link", "/etc/passwd"), False),
    (linked(tarfile.LNKTYPE, "models/hard", "models/a"), False),
    (tar_of([("models/a", b"x"), ("models/a", b"y")]), False),
])
def test_a_layer_holds_only_plain_files_under_models(tmp_path: Path, layer: bytes, last: bool) -> None:
    with pytest.raises(WeightsError):
        extract_layer(io.BytesIO(layer), tmp_path / "tree", "the-artifact", last)
    assert not (tmp_path / "escape").exists() and not list(tmp_path.rglob("link"))


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / "models" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "models" / name).write_bytes(data)
    index = {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)} for name, data in files.items()}
    (root / "conduit-weights.json").write_text(json.dumps({"files": index}))
    return root


def test_a_tree_verifies_when_it_holds_exactly_its_index(tmp_path: Path) -> None:
    root = tree(tmp_path, {"w.bin": b"12345", "tok/vocab.txt": b"ab"})
    assert verify_tree(root, "a") == 7
    (root / "models" / "tok" / "extra.txt").write_bytes(b"unlisted")
    with pytest.raises(WeightsError) as caught:
        verify_tree(root, "a")
    assert caught.value.file == "tok/extra.txt"
    (root / "models" / "tok" / "extra.txt").unlink()
    (root / "models" / "w.bin").write_bytes(b"1234")
    with pytest.raises(WeightsError) as caught:
        verify_tree(root, "a")
    assert caught.value.file == "w.bin" and "4 bytes" in caught.value.message
    (root / "models" / "w.bin").unlink()
    (root / "models" / "w.bin").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(WeightsError, match="not a plain file"):
        verify_tree(root, "a")

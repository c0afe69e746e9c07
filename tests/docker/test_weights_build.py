"""image.weights: separate with the real engine and the registry on 127.0.0.1:5000 (issue 21):
a retrain is the same server image and a new weights digest; a push of weights the registry
has sends no layer; the registry serves the artifact by digest, byte for byte."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import conduit
from weights_artifact import WEIGHTS_SIZE_MODEL as MODEL

pytestmark = pytest.mark.docker


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    root.mkdir()
    (root / "model.py").write_text(MODEL)
    (root / "weights.bin").write_bytes(os.urandom(64 * 1024))
    (root / "conduit.yaml").write_text(
        "name: weights-build\n"
        "models:\n"
        "  - type: python\n"
        "    file: model.py:Model\n"
        "    weights: [weights.bin]\n"
        "image:\n"
        "  repository: 127.0.0.1:5000/weights-build\n"
        "  weights: separate\n"
        "tests:\n"
        "  - name: one\n"
        "    json: [[1]]\n"
    )
    return root


def run(project: Path, *args: str) -> dict[str, Any]:
    env = {"CONDUIT_CACHE_DIR": str(project.parent / "cache")}
    result = conduit(*args, "-f", str(project / "conduit.yaml"), "--json", env=env, timeout=1800)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stderr[-4000:]}"
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def test_a_retrain_is_the_same_image_and_a_push_sends_only_new_layers(engine: Any, project: Path) -> None:
    first = run(project, "build")
    weights = first["weights"]
    assert weights["reference"] == f"127.0.0.1:5000/weights-build-weights:{weights['digest'][7:19]}"
    assert weights["bytes"] > 64 * 1024

    # The image holds a link where the weights were, not the weights.
    container = engine.containers.create(first["tag"], command=["true"])
    try:
        stream, _ = container.get_archive("/app/weights.bin")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            [member] = archive.getmembers()
    finally:
        container.remove()
    assert member.issym() and member.linkname == "/tmp/conduit-weights-active/models/weights.bin"

    (project / "weights.bin").write_bytes(os.urandom(64 * 1024))  # a retrain
    second = run(project, "build")
    assert second["image_id"] == first["image_id"] and second["context_hash"] == first["context_hash"]
    assert second["weights"]["digest"] != weights["digest"]

    pushed = run(project, "push")["weights"]
    assert pushed["digest"] == second["weights"]["digest"]
    assert pushed["layers_sent"] >= 1 and pushed["bytes_sent"] > 64 * 1024
    again = run(project, "push")["weights"]
    assert (again["bytes_sent"], again["layers_sent"], again["layers_skipped"]) == (0, 0, 2)

    digest = pushed["digest"]
    response = httpx.get(f"http://127.0.0.1:5000/v2/weights-build-weights/manifests/{digest}",
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert response.status_code == 200
    stored = project.parent / "cache" / "weights" / "blobs" / "sha256" / digest[7:]
    assert response.content == stored.read_bytes()
    tag = httpx.get(f"http://127.0.0.1:5000/v2/weights-build-weights/manifests/{digest[7:19]}",
                    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert tag.status_code == 200 and tag.headers["Docker-Content-Digest"] == digest

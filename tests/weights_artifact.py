"""Test scaffolding for issue 21's runtime: a weights artifact made from files as
conduit_build/image/weights.py defines it, and pushed to a registry with plain httpx (the build tool's own
builder and push are written apart; this is only what the runtime's tests need)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

REGISTRY = "127.0.0.1:5000"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(entries: list[tuple[str, bytes | None]]) -> bytes:
    """A reproducible tar: (name, bytes) files and (name, None) folders, in the order given."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@dataclass
class Artifact:
    manifest: bytes
    blobs: dict[str, bytes]  # digest → bytes: the config and the layers

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


def make_artifact(weights: dict[str, bytes | dict[str, bytes]]) -> Artifact:
    """`weights`: project path → a file's bytes, or a folder's {relative path: bytes}."""
    layers, index = [], {}
    for path in sorted(weights):
        content = weights[path]
        files = {path: content} if isinstance(content, bytes) else {f"{path}/{name}": data
                                                                    for name, data in content.items()}
        entries: list[tuple[str, bytes | None]] = []
        for name in sorted(files):
            parts = f"models/{name}".split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth]) + "/"
                if (folder, None) not in entries:
                    entries.append((folder, None))
            entries.append((f"models/{name}", files[name]))
            index[name] = {"sha256": hashlib.sha256(files[name]).hexdigest(), "size": len(files[name])}
        layers.append((tar_of(entries), path))
    layers.append((tar_of([("conduit-weights.json", dumps({"files": index}))]), "conduit-weights.json"))
    config = dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"conduit.weights": "1"}},
                    "rootfs": {"type": "layers", "diff_ids": [digest_of(tar) for tar, _ in layers]}})
    manifest = dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(config),
                   "size": len(config)},
        "layers": [{"mediaType": LAYER_TYPE, "digest": digest_of(tar), "size": len(tar),
                    "annotations": {"org.opencontainers.image.title": title}} for tar, title in layers],
    })
    return Artifact(manifest, {digest_of(blob): blob for blob in [config, *(tar for tar, _ in layers)]})


def push(artifact: Artifact, repository: str | None = None, registry: str = REGISTRY) -> str:
    """Blobs (POST then PUT) and the manifest (PUT, by tag); the pin `<registry>/<repo>@<digest>`."""
    repository = repository or f"test-weights-{uuid.uuid4().hex[:12]}"
    base = f"http://{registry}/v2/{repository}"
    with httpx.Client(timeout=30) as client:
        for digest, blob in artifact.blobs.items():
            started = client.post(f"{base}/blobs/uploads/")
            assert started.status_code == 202, started.text
            location = httpx.URL(base).join(started.headers["location"])
            done = client.put(location.copy_merge_params({"digest": digest}), content=blob,
                              headers={"Content-Type": "application/octet-stream"})
            assert done.status_code == 201, done.text
        put = client.put(f"{base}/manifests/latest", content=artifact.manifest,
                         headers={"Content-Type": MANIFEST_TYPE})
        assert put.status_code == 201, put.text
    return f"{registry}/{repository}@{artifact.digest}"


# A python model that loads its weights file the way user code does: from the project folder.
WEIGHTS_SIZE_MODEL = '''\
from pathlib import Path


class Model:
    def load(self, project_dir):
        self.size = len((Path(project_dir) / "weights.bin").read_bytes())

    def predict(self, data):
        return [self.size for _ in data]
'''

"""A weights artifact pulled by digest into a folder, and the digest chain that pins it.

The chain: the manifest's sha256 is the pin; the manifest names the config and each layer by
digest; each blob is hashed as it arrives (registry.Blob); the last layer holds only
conduit-weights.json, which names every file's sha256 (checked afterwards, tree.verify_tree).
A cache entry keeps the manifest and that last layer (`.conduit-chain/`), so that a warm start
checks the whole chain against the pin with no network.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import WeightsError
from .reference import DIGEST, Reference
from .tree import INDEX, extract_layer

LAYER_TYPES = ("application/vnd.oci.image.layer.v1.tar", "application/vnd.docker.image.rootfs.diff.tar")
CHAIN = ".conduit-chain"  # in a cache entry, beside its tree: manifest + index-layer.tar
INDEX_LAYER_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class Descriptor:
    digest: str
    size: int
    title: str  # what a message calls it


@dataclass(frozen=True)
class Pulled:
    manifest: bytes
    index_layer: bytes  # the last layer, conduit-weights.json alone
    downloaded: int  # bytes of blobs received


def pull(ref: Reference, into: Path) -> Pulled:
    """Every layer of the artifact extracted into `into` (empty), each checked on the way."""
    from .registry import Registry  # httpcore only for a pull

    with Registry(ref) as registry:
        manifest = registry.manifest()
        config, layers = read_manifest(manifest, ref)
        check_config(registry.small_blob(config.digest, config.size, config.title), layers, ref)
        downloaded = len(manifest) + config.size
        for layer in layers[:-1]:
            with registry.blob(layer.digest, layer.size, f"the layer of {layer.title}", layer.title) as blob:
                extract_layer(blob.reader(), into, str(ref), last=False)
                downloaded += blob.finish()
        last = layers[-1]
        if last.size > INDEX_LAYER_LIMIT:
            raise WeightsError(f"the last layer of {ref} is {last.size} bytes: not a {INDEX} alone", str(ref), INDEX)
        with registry.blob(last.digest, last.size, "the last layer", INDEX) as blob:
            index_layer = blob.reader().read()
            blob.finish()
        extract_layer(io.BytesIO(index_layer), into, str(ref), last=True)
    return Pulled(manifest, index_layer, downloaded + last.size)


def read_manifest(manifest: bytes, ref: Reference) -> tuple[Descriptor, list[Descriptor]]:
    """Checked against the pin, then read: the config's descriptor and the layers'."""
    if "sha256:" + hashlib.sha256(manifest).hexdigest() != ref.digest:
        raise WeightsError(f"the manifest the registry gave for {ref} is not the one pinned", str(ref))
    try:
        raw = json.loads(manifest)
        config = descriptor(raw["config"], "the config")
        layers = [descriptor(layer, layer.get("annotations", {}).get("org.opencontainers.image.title", "a layer"),
                             LAYER_TYPES) for layer in raw["layers"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise WeightsError(f"{ref} is not a Conduit weights artifact (its manifest is not one)", str(ref)) from None
    if raw.get("schemaVersion") != 2 or not layers:
        raise WeightsError(f"{ref} is not a Conduit weights artifact (its manifest is not one)", str(ref))
    return config, layers


def descriptor(raw: Any, title: str, media_types: tuple[str, ...] = ()) -> Descriptor:
    if media_types and raw["mediaType"] not in media_types:
        raise ValueError(f"a {raw['mediaType']} layer")  # compressed layers are not the format
    digest, size = raw["digest"], raw["size"]
    if not (isinstance(digest, str) and DIGEST.fullmatch(digest) and isinstance(size, int) and size >= 0):
        raise ValueError("a bad descriptor")
    return Descriptor(digest, size, str(title))


def check_config(config: bytes, layers: list[Descriptor], ref: Reference) -> None:
    try:
        raw = json.loads(config)
        label = raw["config"]["Labels"]["conduit.weights"]
        diff_ids = raw["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        label, diff_ids = None, None
    if label != "1" or diff_ids != [layer.digest for layer in layers]:
        raise WeightsError(f"{ref} is not a Conduit weights artifact (its config is not one)", str(ref))


def keep_chain(pulled: Pulled, entry: Path) -> None:
    (entry / CHAIN).mkdir()
    (entry / CHAIN / "manifest.json").write_bytes(pulled.manifest)
    (entry / CHAIN / "index-layer.tar").write_bytes(pulled.index_layer)


def check_chain(entry: Path, ref: Reference) -> None:
    """A cache entry's conduit-weights.json is the one its pin leads to (offline)."""
    try:
        manifest = (entry / CHAIN / "manifest.json").read_bytes()
        index_layer = (entry / CHAIN / "index-layer.tar").read_bytes()
        index = (entry / INDEX).read_bytes()
    except OSError:
        raise WeightsError(f"the cached weights of {ref} are incomplete ({entry})", str(ref), INDEX) from None
    last = read_manifest(manifest, ref)[1][-1]
    if "sha256:" + hashlib.sha256(index_layer).hexdigest() != last.digest:
        raise WeightsError(f"the cached weights of {ref} do not match their pin", str(ref), INDEX)
    try:
        with tarfile.open(fileobj=io.BytesIO(index_layer)) as tar:
            member = tar.extractfile(INDEX)
            pinned = member.read() if member is not None else b""
    except (tarfile.TarError, KeyError):
        pinned = b""
    if pinned != index:
        raise WeightsError(f"the cached {INDEX} of {ref} is not the pinned one", str(ref), INDEX)

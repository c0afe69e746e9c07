"""The weights artifact of `image.weights: separate` (issue 21).

The model files leave the server image and become an OCI image of their own:

    manifest    {"schemaVersion": 2, config, layers}           its sha256 is the artifact's digest
    config      {"architecture", "os", "config": {"Labels"}, "rootfs": {"diff_ids"}}
    layers      one uncompressed tar per weights path (models/<project path>), in path order,
                then one holding only conduit-weights.json ({"files": {path: {sha256, size}}})

Every blob is written with fixed owners, modes and times: the same files give the same bytes,
the same layer digests and the same artifact digest, and two versions that share a file share
its layer. Blobs live in a local content-addressed store (`store()`), written once: a layer
already there is only hashed, never written again. A file is streamed, never held in memory;
its sha256 and its layer's are computed in the same read.

`materialize(digest, into)` extracts an artifact from the store into a weights tree
(`<into>/conduit-weights.json`, `<into>/models/<path>`), checking every blob and file on the way.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from conduit_runtime.weights import WeightsError
from conduit_runtime.weights.tree import extract_layer as runtime_extract
from conduit_runtime.weights.tree import verify_tree

from ..config import Project
from ..errors import BuildError, ConduitError

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
TITLE = "org.opencontainers.image.title"
INDEX_NAME = "conduit-weights.json"
ROOT = "models"  # the folder of a tree (and of every layer) the weights lie under
CHAIN = ".conduit-chain"  # in a tree: the manifest and the last layer its index is pinned by
CHUNK = 1 << 20


def canonical(value: Any) -> bytes:
    """The one serialization of every JSON blob of the artifact (the spec's)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    """A descriptor: what a manifest says of a blob."""

    digest: str  # sha256:<hex>
    size: int
    path: str = ""  # the project path a layer holds ("" for the config, INDEX_NAME for the last layer)

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")


@dataclass(frozen=True)
class WeightsArtifact:
    """A weights artifact in the local store."""

    digest: str  # sha256:<hex> of the manifest
    repository: str  # where `conduit push` sends it (weights_repository)
    layers: tuple[Blob, ...]  # in manifest order; the last one holds conduit-weights.json
    config: Blob
    manifest_size: int
    files: Mapping[str, tuple[str, int]]  # project path of each file → (sha256 hex, size)

    @property
    def tag(self) -> str:
        return self.digest.removeprefix("sha256:")[:12]

    @property
    def reference(self) -> str:
        """<weights repository>:<digest hex[:12]>, the tag `conduit push` gives it."""
        return f"{self.repository}:{self.tag}"

    @property
    def pinned(self) -> str:
        """<weights repository>@sha256:<hex>: what CONDUIT_WEIGHTS names."""
        return f"{self.repository}@{self.digest}"

    @property
    def bytes(self) -> int:
        """The whole artifact: layers, config and manifest."""
        return sum(layer.size for layer in self.layers) + self.config.size + self.manifest_size

    def blobs(self) -> tuple[Blob, ...]:
        """What a registry must hold before the manifest goes up: layers, then the config."""
        return (*self.layers, self.config)


# -- which files ---------------------------------------------------------------------------


def weight_paths(project: Project) -> list[str]:
    """The project's weights: every file-based models[i].file (a file or a folder; a python
    model's model.py is code) and every models[i].weights entry, as POSIX project-relative
    paths, sorted and deduplicated."""
    paths = {Path(stage.file).as_posix() for stage in project.config.models if stage.type != "python"}
    paths |= {Path(entry).as_posix() for stage in project.config.models for entry in stage.weights}
    return sorted(paths)


def weights_repository(project: Project) -> str:
    image = project.config.image
    return image.weights_repository or f"{image.repository or project.config.name}-weights"


def separate(project: Project) -> bool:
    return project.config.image.weights == "separate"


def is_weights_file(project: Project, relative: str) -> bool:
    """Is this project-relative file one of the weights (or under a weights folder)?"""
    path = PurePosixPath(relative)
    return any(path == PurePosixPath(p) or path.is_relative_to(p) for p in weight_paths(project))


# -- the store -----------------------------------------------------------------------------


def store(environ: Mapping[str, str] | None = None) -> Path:
    """$CONDUIT_CACHE_DIR, else $XDG_CACHE_HOME/conduit, else ~/.cache/conduit; then weights/."""
    env = os.environ if environ is None else environ
    base = env.get("CONDUIT_CACHE_DIR") or (
        str(Path(env["XDG_CACHE_HOME"]) / "conduit") if env.get("XDG_CACHE_HOME") else str(Path.home() / ".cache" / "conduit")
    )
    return Path(base) / "weights"


def blob_path(digest: str, root: Path | None = None) -> Path:
    hex_ = digest.removeprefix("sha256:")
    if len(hex_) != 64 or any(c not in "0123456789abcdef" for c in hex_):
        raise ConduitError(f"{digest!r} is not a sha256 digest", "write it as sha256:<64 hex digits>")
    return (root or store()) / "blobs" / "sha256" / hex_


class Sink:
    """A write-only file that hashes and counts what passes, and keeps it only if given a file."""

    def __init__(self, target: IO[bytes] | None = None) -> None:
        self.sha = hashlib.sha256()
        self.size = 0
        self.target = target

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        if self.target is not None:
            self.target.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha.hexdigest()}"


class HashingReader:
    """A file read once by tarfile: its sha256 on the way."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.sha.update(data)
        return data


def store_blob(data: bytes, root: Path) -> Blob:
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    target = blob_path(digest, root)
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".tmp-", delete=False) as handle:
            handle.write(data)
        os.replace(handle.name, target)
    return Blob(digest, len(data))


# -- one layer -----------------------------------------------------------------------------


def entries(project_root: Path, relative: str) -> list[tuple[str, Path | None]]:
    """The tar entries of one weights path: (name, file) with None for a folder; parents first,
    then the path, then (for a folder) everything under it, sorted. No links, no devices."""
    parts = PurePosixPath(relative).parts
    found: list[tuple[str, Path | None]] = [("/".join((ROOT, *parts[:n])), None) for n in range(len(parts))]
    source = (project_root / relative).resolve()  # the path itself may be a link inside the project
    if source.is_file():
        return [*found, (f"{ROOT}/{relative}", source)]
    if not source.is_dir():
        raise BuildError(f"weights path {relative!r} is neither a file nor a folder", "fix models[i].weights")
    below: list[tuple[str, Path | None]] = [(f"{ROOT}/{relative}", None)]
    for folder, dirs, files in os.walk(source):
        for name in (*dirs, *files):
            full = Path(folder) / name
            inner = full.relative_to(source).as_posix()
            mode = full.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise BuildError(f"weights folder {relative!r} holds a symbolic link, {inner!r}",
                                 "the weights artifact holds files and folders only: copy the file there instead")
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise BuildError(f"weights folder {relative!r} holds {inner!r}, which is not a file", "remove it")
            below.append((f"{ROOT}/{relative}/{inner}", full if stat.S_ISREG(mode) else None))
    return [*found, *sorted(below, key=lambda entry: entry[0])]


def write_tar(members: list[tuple[str, Path | None]] | list[tuple[str, bytes]], sink: Sink,
              hashes: dict[str, tuple[str, int]] | None = None) -> None:
    """A deterministic uncompressed tar: PAX, root-owned, no names, time 0, 0755/0644."""
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK) as archive:  # type: ignore[call-overload]
        for name, source in members:
            info = tarfile.TarInfo(name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if source is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
                continue
            info.mode = 0o644
            if isinstance(source, bytes):
                info.size = len(source)
                archive.addfile(info, io.BytesIO(source))
                continue
            with source.open("rb") as handle:
                info.size = os.fstat(handle.fileno()).st_size
                reader = HashingReader(handle)
                archive.addfile(info, reader)
            if hashes is not None:
                hashes[name.removeprefix(f"{ROOT}/")] = (reader.sha.hexdigest(), info.size)


def store_layer(members: list[tuple[str, Path | None]], root: Path, relative: str,
                hashes: dict[str, tuple[str, int]]) -> Blob:
    """Hash the layer's tar without writing it; write it only when the store lacks it (a
    second pass, checked against the first: a file changed meanwhile is an error)."""
    sink = Sink()
    write_tar(members, sink, hashes)
    target = blob_path(sink.digest, root)
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".tmp-", delete=False) as handle:
            try:
                written = Sink(handle)
                write_tar(members, written)
            except BaseException:
                os.unlink(handle.name)
                raise
        if written.digest != sink.digest:
            os.unlink(handle.name)
            raise BuildError(f"weights path {relative!r} changed while it was read", "build again once it is written")
        os.replace(handle.name, target)
    return Blob(sink.digest, sink.size, relative)


# -- the artifact --------------------------------------------------------------------------


def build_weights(project: Project, root: Path | None = None) -> WeightsArtifact:
    """The project's weights artifact, in the store (`root`, default `store()`)."""
    root = root or store()
    hashes: dict[str, tuple[str, int]] = {}
    layers = [store_layer(entries(project.root, relative), root, relative, hashes) for relative in weight_paths(project)]
    index = canonical({"files": {path: {"sha256": sha, "size": size} for path, (sha, size) in sorted(hashes.items())}})
    index_sink = Sink()
    write_tar([(INDEX_NAME, index)], index_sink)
    last = store_index_layer(index, index_sink.digest, root)
    layers.append(Blob(last.digest, last.size, INDEX_NAME))
    config = store_blob(canonical({
        "architecture": "amd64", "os": "linux", "config": {"Labels": {"conduit.weights": "1"}},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
    }), root)
    manifest = canonical(manifest_of(config, layers))
    stored = store_blob(manifest, root)
    return WeightsArtifact(stored.digest, weights_repository(project), tuple(layers), config, stored.size, hashes)


def store_index_layer(index: bytes, digest: str, root: Path) -> Blob:
    target = blob_path(digest, root)
    sink = Sink()
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".tmp-", delete=False) as handle:
            sink = Sink(handle)
            write_tar([(INDEX_NAME, index)], sink)
        os.replace(handle.name, target)
    else:
        write_tar([(INDEX_NAME, index)], sink)
    return Blob(sink.digest, sink.size)


def manifest_of(config: Blob, layers: list[Blob]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": LAYER_TYPE, "digest": layer.digest, "size": layer.size,
                    "annotations": {TITLE: layer.path}} for layer in layers],
    }


def load_artifact(digest: str, repository: str = "", root: Path | None = None) -> WeightsArtifact:
    """An artifact already in the store, by its manifest digest (each blob checked)."""
    root = root or store()
    manifest_bytes = read_verified(digest, root)
    try:
        manifest = json.loads(manifest_bytes)
        config = Blob(manifest["config"]["digest"], int(manifest["config"]["size"]))
        layers = tuple(Blob(layer["digest"], int(layer["size"]), layer.get("annotations", {}).get(TITLE, ""))
                       for layer in manifest["layers"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConduitError(f"weights artifact {digest}: the manifest is not an OCI image manifest ({exc})") from None
    index = json.loads(read_index(layers[-1], root)) if layers else {"files": {}}
    files = {path: (entry["sha256"], int(entry["size"])) for path, entry in index["files"].items()}
    return WeightsArtifact(digest, repository, layers, config, len(manifest_bytes), files)


def read_verified(digest: str, root: Path) -> bytes:
    path = blob_path(digest, root)
    if not path.is_file():
        raise ConduitError(f"weights artifact {digest} is not in {root}", "run `conduit build` first")
    data = path.read_bytes()
    if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
        raise ConduitError(f"{path} does not match its digest {digest}", "delete it and build again")
    return data


def read_index(layer: Blob, root: Path) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(read_verified(layer.digest, root)), mode="r:") as archive:
        member = archive.extractfile(INDEX_NAME)
        if member is None:
            raise ConduitError(f"weights layer {layer.digest} holds no {INDEX_NAME}")
        return member.read()


# -- a tree from the store -----------------------------------------------------------------


def materialize(digest: str, into: Path, root: Path | None = None) -> Path:
    """Extract the artifact `digest` from the store into the weights tree `into` (which must
    not exist yet, or be an empty folder): made in `.partial-*` beside it, renamed when whole.
    Every blob is checked against its digest while it is read; the layers are extracted and
    the tree checked against conduit-weights.json by the runtime's own code (one definition of
    a safe tree: conduit_runtime/weights/tree.py); the tree keeps the digest chain of its index
    (`.conduit-chain/`, as a runtime cache entry does). Returns `into`."""
    root = root or store()
    artifact = load_artifact(digest, root=root)
    if into.exists() and not (into.is_dir() and not any(into.iterdir())):
        raise ConduitError(f"{into} exists already", "name a new or empty folder")
    into.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".partial-{into.name}-", dir=into.parent))
    try:
        for number, layer in enumerate(artifact.layers, 1):
            extract_layer(layer, root, partial, last=number == len(artifact.layers))
        try:
            verify_tree(partial, digest)
        except WeightsError as error:
            raise ConduitError(error.message, "delete the store's blobs and build again") from None
        keep_chain(artifact, root, partial)
        os.chmod(partial, 0o755)
        if into.exists():
            into.rmdir()
        partial.rename(into)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return into


def keep_chain(artifact: WeightsArtifact, root: Path, tree: Path) -> None:
    """`<tree>/.conduit-chain/`: the manifest and the last layer, as the runtime keeps them in
    its cache entries (conduit_runtime/weights/pull.py), so that the tree's conduit-weights.json
    can be checked against the digest later without the store (weights_host.py does)."""
    chain = tree / CHAIN
    chain.mkdir(mode=0o755)
    (chain / "manifest.json").write_bytes(read_verified(artifact.digest, root))
    (chain / "index-layer.tar").write_bytes(read_verified(artifact.layers[-1].digest, root))
    for path in chain.iterdir():
        os.chmod(path, 0o644)


def extract_layer(layer: Blob, root: Path, tree: Path, last: bool) -> None:
    """One layer of the store into `tree` (the runtime's extraction), its digest checked over
    every byte read."""
    source = blob_path(layer.digest, root)
    if not source.is_file():
        raise ConduitError(f"weights layer {layer.digest} ({layer.path}) is not in {root}", "run `conduit build` first")
    with source.open("rb") as handle:
        reader = HashingReader(handle)
        try:
            runtime_extract(reader, tree, layer.digest, last)  # type: ignore[arg-type]
        except WeightsError as error:
            raise ConduitError(error.message, "delete the store's blobs and build again") from None
        while reader.read(CHUNK):  # the tar's padding: the digest covers the whole blob
            pass
    if f"sha256:{reader.sha.hexdigest()}" != layer.digest:
        raise ConduitError(f"weights layer {layer.digest} ({layer.path}) does not match its digest",
                           "delete it from the store and build again")


def cached_tree(digest: str, root: Path | None = None) -> Path:
    """The build tool's own tree of `digest` (`<store>/trees/sha256-<hex>`), materialized once
    per host: two containers of the same weights mount one copy (read-only)."""
    root = root or store()
    tree = root / "trees" / f"sha256-{blob_path(digest, root).name}"
    if (tree / INDEX_NAME).is_file():
        return tree
    try:
        return materialize(digest, tree, root)
    except (ConduitError, OSError):
        if (tree / INDEX_NAME).is_file():  # another process made it meanwhile
            return tree
        raise

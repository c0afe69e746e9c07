"""A weights tree: `<root>/conduit-weights.json` + `<root>/models/<project path>`, the artifact's
layers extracted in order (a cache entry, a mounted CONDUIT_WEIGHTS_DIR, an init container's
folder). `verify_tree` checks one against its index before any model loads; `extract_layer`
writes one layer of the artifact into one, refusing anything but plain files and folders under
models/ (and the index, alone in the last layer)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from . import WeightsError

INDEX = "conduit-weights.json"
MODELS = "models"
CHUNK = 1024 * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def safe_path(name: str) -> bool:
    """Relative, normalized, POSIX: nothing that could point outside the tree."""
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and "\\" not in name and "\0" not in name and all(
        part not in ("", ".", "..") for part in parts)


def read_index(root: Path, artifact: str) -> dict[str, tuple[str, int]]:
    """conduit-weights.json: {project path: (sha256 hex, size)}."""
    try:
        raw = json.loads((root / INDEX).read_bytes())
        files = {str(path): (str(entry["sha256"]), int(entry["size"])) for path, entry in raw["files"].items()}
    except FileNotFoundError:
        raise WeightsError(f"the weights of {artifact} have no {INDEX}", artifact, INDEX) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WeightsError(f"the {INDEX} of {artifact} is unreadable ({type(exc).__name__})", artifact, INDEX) from None
    for path in files:
        if not safe_path(path):
            raise WeightsError(f"the {INDEX} of {artifact} names a path outside its tree: {path!r}", artifact, INDEX)
    return files


def check_paths(root: Path, paths: Iterable[str], artifact: str) -> None:
    """Every weights path of the image's conduit.json is in the tree."""
    for path in paths:
        if not os.path.lexists(root / MODELS / path):
            raise WeightsError(f"the weights of {artifact} lack {path}, a weights path of this image", artifact, path)


def verify_tree(root: Path, artifact: str) -> int:
    """Check every file of the index (a regular file, its size, its sha256), and that models/
    holds nothing else; the bytes of the weights."""
    files = read_index(root, artifact)
    models = root / MODELS
    for folder, dirs, names in os.walk(models):
        for name in [*dirs, *names]:
            full = Path(folder, name)
            path = full.relative_to(models).as_posix()
            mode = full.lstat().st_mode
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise WeightsError(f"the weights of {artifact} hold {path}, not a plain file", artifact, path)
            if path not in files:
                raise WeightsError(f"the weights of {artifact} hold {path}, which their {INDEX} does not list",
                                   artifact, path)
    total = 0
    for path, (sha256, size) in sorted(files.items()):
        full = models / path
        try:
            info = full.lstat()
        except OSError:
            raise WeightsError(f"the weights of {artifact} lack {path}", artifact, path) from None
        if not stat.S_ISREG(info.st_mode) or info.st_size != size:
            raise WeightsError(f"{path} of {artifact} is not what was pinned: {info.st_size} bytes, "
                               f"{size} expected", artifact, path)
        if sha256_of(full) != sha256:
            raise WeightsError(f"{path} of {artifact} is not what was pinned: its sha256 differs", artifact, path)
        total += size
    return total


def extract_layer(stream: IO[bytes], root: Path, artifact: str, last: bool) -> None:
    """One uncompressed layer into `root`: folders and plain files under models/ (or, in the
    last layer, only conduit-weights.json); a file already there (from another layer) is refused."""
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = member.name.rstrip("/") if member.isdir() else member.name
                allowed = name == INDEX if last else (name == MODELS or name.startswith(MODELS + "/"))
                if not (safe_path(name) and allowed):
                    raise WeightsError(f"a layer of {artifact} holds {member.name!r}, outside models/", artifact,
                                       member.name)
                target = root / name
                if member.isdir():
                    target.mkdir(mode=0o755, parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    raise WeightsError(f"a layer of {artifact} holds {name}, a link or special file", artifact, name)
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                try:
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                except FileExistsError:
                    raise WeightsError(f"two layers of {artifact} hold {name}", artifact, name) from None
                with os.fdopen(fd, "wb") as out:
                    while chunk := source.read(CHUNK):
                        out.write(chunk)
    except tarfile.TarError as exc:
        raise WeightsError(f"a layer of {artifact} is not a readable tar ({exc})", artifact) from None

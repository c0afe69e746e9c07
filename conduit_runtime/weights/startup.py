"""What the server does with its weights at start, before any model loads (model/service.py):

    CONDUIT_WEIGHTS_DIR set   that tree, as is (never written)                    source "dir"
    CONDUIT_WEIGHTS set       CONDUIT_WEIGHTS_CACHE/sha256-<hex>/ when there      source "cache"
                              (no network), else pulled there: into .partial-*
                              beside it, renamed when whole and verified          source "registry"
    neither                   WeightsError: start-up fails

then, whichever it is: every file checked against conduit-weights.json (and, for a cache entry,
that index against the pin), every weights path of conduit.json present, and the active link
(CONDUIT_WEIGHTS_ACTIVE, default /tmp/conduit-weights-active: the image's /app/P point through
it) swapped to the tree atomically. Processes of one host pulling the same artifact take turns
(a lock file beside the entry): the first pulls, the others find it cached.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..log import log
from ..spec import WeightsSpec
from . import ACTIVE_ENV, CACHE_ENV, DEFAULT_ACTIVE, DEFAULT_CACHE, DIR_ENV, WEIGHTS_ENV, WeightsError
from .pull import check_chain, keep_chain, pull
from .reference import Reference, parse_reference
from .tree import INDEX, MODELS, check_paths, verify_tree

NEITHER = (f"this image's weights are separate (image.weights: separate): set {WEIGHTS_ENV}="
           f"<registry>/<repository>@sha256:<digest>, or mount a weights folder at {DIR_ENV}")


@dataclass(frozen=True)
class Fetched:
    artifact: str  # the pin, or the mounted folder
    source: str  # "registry" | "cache" | "dir"
    tree: Path
    bytes: int  # of the weights' files
    seconds: float  # from the start of the fetch to a verified tree


def prepare(spec: WeightsSpec, environ: Mapping[str, str] = os.environ) -> Fetched:
    """The weights verified and made active, logged (`weights_fetched`); or a WeightsError."""
    fetched = fetch(spec.paths, environ)
    activate(fetched.tree, Path(environ.get(ACTIVE_ENV) or DEFAULT_ACTIVE), fetched.artifact)
    log({"event": "weights_fetched", "artifact": fetched.artifact, "source": fetched.source,
         "bytes": fetched.bytes, "seconds": fetched.seconds})
    return fetched


def fetch(paths: tuple[str, ...], environ: Mapping[str, str] = os.environ) -> Fetched:
    started = time.monotonic()
    folder = environ.get(DIR_ENV, "")
    pin = environ.get(WEIGHTS_ENV, "")
    artifact = folder or pin
    try:
        if folder:
            source, tree = "dir", Path(folder)
            if not tree.is_dir():
                raise WeightsError(f"{DIR_ENV}={folder} is not a folder", folder)
            total = verify_tree(tree, folder)
        elif pin:
            ref = parse_reference(pin)
            source, tree, total = cached(ref, Path(environ.get(CACHE_ENV) or DEFAULT_CACHE))
        else:
            raise WeightsError(NEITHER)
        check_paths(tree, paths, artifact)
    except OSError as exc:
        raise WeightsError(f"the weights of {artifact} could not be read or written: {exc.strerror}",
                           artifact, exc.filename and str(exc.filename)) from None
    return Fetched(artifact, source, tree.absolute(), total, round(time.monotonic() - started, 3))


def cached(ref: Reference, cache: Path) -> tuple[str, Path, int]:
    """(source, the cache entry of the pin, its bytes): verified, pulled first when not there."""
    entry = cache / f"sha256-{ref.hex}"
    if not entry.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        with locked(cache / f".lock-sha256-{ref.hex}"):
            if not entry.is_dir():  # nobody pulled it while we waited
                for dead in cache.glob(f".partial-{ref.hex}-*"):  # left by a process that died pulling
                    shutil.rmtree(dead, ignore_errors=True)
                partial = Path(tempfile.mkdtemp(prefix=f".partial-{ref.hex}-", dir=cache))
                try:
                    keep_chain(pull(ref, partial), partial)
                    total = verify_tree(partial, str(ref))
                    partial.chmod(0o755)
                    os.rename(partial, entry)
                except BaseException:
                    shutil.rmtree(partial, ignore_errors=True)
                    raise
                return "registry", entry, total
    check_chain(entry, ref)
    return "cache", entry, verify_tree(entry, str(ref))


def fetch_into(folder: Path, environ: Mapping[str, str] = os.environ) -> Fetched:
    """`fetch --into DIR`: the pinned artifact pulled into `folder` (empty, or holding an earlier
    try's tree) and verified; no cache, no active link."""
    started = time.monotonic()
    pin = environ.get(WEIGHTS_ENV, "")
    if not pin:
        raise WeightsError(f"set {WEIGHTS_ENV}=<registry>/<repository>@sha256:<digest> to fetch")
    ref = parse_reference(pin)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        leftovers = list(folder.iterdir())
        if any(path.name not in (INDEX, MODELS) for path in leftovers):
            raise WeightsError(f"{folder} holds more than a weights tree: fetch into an empty folder", pin)
        for path in leftovers:  # an earlier try's, perhaps cut short
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        pull(ref, folder)
        total = verify_tree(folder, pin)
    except OSError as exc:
        raise WeightsError(f"the weights of {pin} could not be written: {exc.strerror}",
                           pin, exc.filename and str(exc.filename)) from None
    return Fetched(pin, "registry", folder.absolute(), total, round(time.monotonic() - started, 3))


def activate(tree: Path, active: Path, artifact: str) -> None:
    """Point the active link at `tree`, atomically (a new link renamed over the old one)."""
    temporary = active.with_name(f".{active.name}.{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.symlink(tree.absolute(), temporary)
        os.replace(temporary, active)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise WeightsError(f"the weights of {artifact} could not be made active at {active}: {exc.strerror}",
                           artifact) from None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    with path.open("a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)

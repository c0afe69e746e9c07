"""The weights of an image built with `image.weights: separate` (issue 21) where the build tool
starts its containers: `conduit test` (contract/servers.py) and `conduit deploy --target docker`
(deploy/docker.py). Here, in image/, because both use it.

Which weights: the pin given (`--weights REF`), else the current project's artifact
(weights.build_weights: hashed, written to the store only when it changed). Whether an image
needs them: its `conduit.config` label says `image.weights: separate` (the project's setting
for an image without the label).

    a local engine (unix://, DOCKER_HOST unset)
        the artifact's tree in the build tool's cache, `<store>/trees/sha256-<hex>`: made from
        the store (weights.cached_tree) or, when the store lacks the artifact, pulled there by the
        runtime's own code; checked before every use (its index against the digest through the
        tree's `.conduit-chain/`, every file by size and sha256; a tree that fails is made
        again once). Bind-mounted read-only at /conduit-weights/sha256-<hex>, CONDUIT_WEIGHTS_DIR.
        Two containers of the same weights mount the same folder: one copy per host.
    a remote engine (tcp://, ssh://)
        a folder of this machine cannot be mounted there. A fetch container (the server image
        itself, run once to its end, on the host's network so it reaches the registries the
        engine's own pulls reach) pulls the pin into the host's named volume `conduit-weights`,
        the runtime's cache layout (`sha256-<hex>/`, verified; a warm one is only checked);
        the server mounts that volume read-only at /conduit-weights, CONDUIT_WEIGHTS_DIR
        pointing at the entry. Once per host as well; the server itself needs no network for
        its weights (a deploy's candidate starts on an internal network).

Either way the server also gets CONDUIT_WEIGHTS=<pin>, for the record (the folder wins).
Registry credentials (CONDUIT_REGISTRY_USERNAME / _PASSWORD) reach a pull here, or the fetch
container's environment, never a label, an image or a log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from conduit_runtime.weights import CACHE_ENV, DIR_ENV, WEIGHTS_ENV, WeightsError
from conduit_runtime.weights.pull import check_chain
from conduit_runtime.weights.reference import Reference, parse_reference
from conduit_runtime.weights.tree import verify_tree

from ..config import Project
from ..errors import ConduitError, UsageError
from . import engine
from .weights import blob_path, build_weights, cached_tree, separate, store

MOUNT = "/conduit-weights"  # where a container finds its weights: MOUNT/sha256-<hex>
VOLUME = "conduit-weights"  # a remote host's cache of weights trees (the runtime's layout)
FETCH_TIMEOUT_S = 3600
PIN = re.compile(r"^(?P<repository>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")
PASSED_ON = ("CONDUIT_REGISTRY_USERNAME", "CONDUIT_REGISTRY_PASSWORD", "CONDUIT_REGISTRY_PLAIN_HTTP")
# The fetch container's program: the runtime's own cache logic (startup.fetch), one JSON line out.
FETCH = """import json, sys
from conduit_runtime.weights import WeightsError
from conduit_runtime.weights.startup import fetch
try:
    got = fetch(())
except WeightsError as error:
    print(json.dumps({"event": "weights_fetch_failed", **error.record()}))
    sys.exit(1)
print(json.dumps({"event": "weights_fetched", "source": got.source, "bytes": got.bytes, "seconds": got.seconds}))
"""


@dataclass(frozen=True)
class Pin:
    reference: str  # <weights repository>@sha256:<hex>, what CONDUIT_WEIGHTS names
    digest: str  # sha256:<hex>

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")

    @property
    def folder(self) -> str:
        """Where the container finds the tree."""
        return f"{MOUNT}/sha256-{self.hex}"


@dataclass(frozen=True)
class Weights:
    """What a container of a `separate` image gets: its environment and its mounts."""

    pin: Pin
    environment: dict[str, str]
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)
    source: str = ""  # a host folder, or the volume, for messages


def parse_pin(text: str) -> Pin:
    found = PIN.match(text.strip())
    if found is None:
        raise UsageError(f"--weights {text!r} is not <repository>@sha256:<64 hex digits>",
                         "give the weights reference `conduit push` printed")
    return Pin(found.group(0), found.group("digest"))


def project_pin(project: Project, given: str | None = None) -> Pin:
    """`given`, else the current project's weights artifact (in the store after this)."""
    if given:
        return parse_pin(given)
    artifact = build_weights(project)
    return Pin(artifact.pinned, artifact.digest)


def image_is_separate(client: engine.Client, image: str, project: Project) -> bool:
    """Does `image` need its weights from outside? Its `conduit.config` label says."""
    label = engine.image_labels(client, image).get("conduit.config")
    if label is None:
        return separate(project)
    try:
        config = yaml.safe_load(label) or {}
        return bool(config.get("image", {}).get("weights") == "separate")
    except (yaml.YAMLError, AttributeError):
        return separate(project)


def local_engine(host: str | None) -> bool:
    """Does the engine (deploy.docker.host, else DOCKER_HOST) see this machine's folders?"""
    where = host or os.environ.get("DOCKER_HOST", "")
    return not where or where.startswith(("unix://", "npipe://"))


def for_container(client: engine.Client, image: str, project: Project, host: str | None = None,
                  given: str | None = None) -> Weights | None:
    """None for an image with its weights inside; else what its container gets (the tree made,
    or fetched onto the host, first)."""
    if not image_is_separate(client, image, project):
        if given:
            raise UsageError(f"--weights: {image} holds its weights (it was not built with image.weights: separate)")
        return None
    pin = project_pin(project, given)
    if local_engine(host):
        return mounted(pin, host_tree(pin))
    return fetched_on_host(client, image, pin)


# -- a local engine: the build tool's tree, bind-mounted -----------------------------------


def mounted(pin: Pin, tree: Path) -> Weights:
    return Weights(pin, {WEIGHTS_ENV: pin.reference, DIR_ENV: pin.folder},
                   {str(tree): {"bind": pin.folder, "mode": "ro"}}, str(tree))


def chain_reference(pin: Pin) -> Reference:
    """The pin as the runtime's checks name it (a repository without a registry still checks)."""
    try:
        return parse_reference(pin.reference)
    except WeightsError:
        return Reference("local", "weights", pin.digest)


def host_tree(pin: Pin, root: Path | None = None) -> Path:
    """The tree of `pin` in the build tool's cache, checked: made from the store, or pulled
    when the store lacks it; a tree that fails its check is set aside and made again once."""
    root = root or store()
    entry = root / "trees" / f"sha256-{pin.hex}"
    ref = chain_reference(pin)
    for attempt in (1, 2):
        try:
            if not entry.is_dir():
                if blob_path(pin.digest, root).is_file():
                    cached_tree(pin.digest, root)
                else:
                    pull_tree(pin, entry.parent)
            check_chain(entry, ref)
            verify_tree(entry, pin.reference)
            return entry
        except WeightsError as error:
            if attempt == 2 or not entry.is_dir():
                raise ConduitError(f"weights {pin.reference}: {error.message}",
                                   "run `conduit build` (or `conduit push` where the weights come from)") from None
            discard(entry)
    raise AssertionError("unreachable")  # pragma: no cover


def pull_tree(pin: Pin, trees: Path) -> None:
    """The runtime's pull, into the build tool's cache (`trees/sha256-<hex>`, verified)."""
    from conduit_runtime.weights.startup import cached

    try:
        ref = parse_reference(pin.reference)
    except WeightsError:
        raise ConduitError(f"weights {pin.digest} are not in {store()} and {pin.reference} names no registry",
                           "run `conduit build` here, or set image.repository and `conduit push`") from None
    try:
        cached(ref, trees)
    except OSError as exc:
        raise ConduitError(f"weights {pin.reference}: {exc.strerror} ({exc.filename})") from None


def discard(entry: Path) -> None:
    """Set a bad tree aside (a rename: a container may still hold it open), then delete it."""
    aside = Path(tempfile.mkdtemp(prefix=f".bad-{entry.name}-", dir=entry.parent))
    os.rename(entry, aside / entry.name)
    shutil.rmtree(aside, ignore_errors=True)


# -- a remote engine: fetched onto the host, into a named volume ---------------------------


def fetched_on_host(client: engine.Client, image: str, pin: Pin) -> Weights:
    try:
        parse_reference(pin.reference)
    except WeightsError as error:
        raise ConduitError(f"weights {pin.reference}: a remote engine pulls them, and {error.message}",
                           "set image.repository (or image.weights_repository) and `conduit push`") from None
    engine.ensure_volume(client, VOLUME, {"conduit.weights-cache": "1"})
    environment = {WEIGHTS_ENV: pin.reference, CACHE_ENV: MOUNT,
                   **{name: os.environ[name] for name in PASSED_ON if os.environ.get(name)}}
    code, output = engine.run_to_end(client, image, ["python3", "-c", FETCH], environment, FETCH_TIMEOUT_S,
                                     user="0", network_mode="host",
                                     volumes={VOLUME: {"bind": MOUNT, "mode": "rw"}})
    if code != 0:
        raise ConduitError(f"weights {pin.reference} could not be fetched onto the host: {last_line(output)}",
                           "was it pushed (`conduit push`), and does the host reach the registry?")
    try:
        how = "pulled" if json.loads(last_line(output)).get("source") == "registry" else "cached already"
    except (ValueError, AttributeError):
        how = "fetched"
    return Weights(pin, {WEIGHTS_ENV: pin.reference, DIR_ENV: pin.folder},
                   {VOLUME: {"bind": MOUNT, "mode": "ro"}}, f"the host's volume {VOLUME}, {how}")


def last_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1][:500] if lines else "no output"

"""`conduit build` and `conduit push`: render, then build through the SDK unless an
image of the same context hash exists already (a no-op rebuild answers at once);
push to image.repository and find what was pushed. With image.weights: separate, the
weights artifact (weights.py) is built beside the image and pushed beside it (registry.py).

With conduit.lock the image installs exactly the lock (a stale one is locked again first,
or refused under `--locked`); without one the builder resolves, and the image is labelled
with the digest of what it installed, read back from the image after the build."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Project
from ..errors import BuildError, ConduitError, UsageError
from . import engine
from .context import INSTALLED_LABEL, render
from .engine import Progress
from .lock import INSTALLED_PATH, lock_project, lock_status
from .lockfile import LockFile
from .registry import PushedWeights, push_weights
from .requirements import CPU_TORCH_FIX, cpu_torch_unavailable
from .uv import UV_IMAGE, UV_IMAGE_ARG, host_uv_for_images, record_uv_image, trusted_uv_image, uv_image_context
from .weights import WeightsArtifact, build_weights, separate, store, weight_paths


@dataclass(frozen=True)
class Built:
    tag: str
    image_id: str
    context_hash: str
    cached: bool  # an image with this context hash existed already
    weights: WeightsArtifact | None = None  # image.weights: separate: the artifact, in the local store


@dataclass(frozen=True)
class Pushed:
    tag: str
    digest: str  # sha256:…
    reference: str  # repository@sha256:…, what deploy runs
    weights: PushedWeights | None = None  # image.weights: separate: the artifact pushed beside it


def weights_summary(artifact: WeightsArtifact) -> dict[str, object]:
    """What `conduit build --json` says of the weights artifact."""
    return {"reference": artifact.reference, "digest": artifact.digest, "bytes": artifact.bytes}


def default_tag(project: Project, context_hash: str | None = None) -> str:
    """<image.repository or name>:<context hash[:12]>, of the current context unless given."""
    repository = project.config.image.repository or project.config.name
    return f"{repository}:{(context_hash or render(project).hash)[:12]}"


def build_image(project: Project, tag: str | None = None, no_cache: bool = False,
                on_progress: Callable[[Progress], None] = lambda event: None, locked: bool = False) -> Built:
    check_lock(project, locked, on_progress)
    context = render(project)
    tag = tag or default_tag(project, context.hash)
    # The weights first: a link in a weights folder fails here, not after the image's build.
    weights = build_separate_weights(project, on_progress)
    client = engine.client()
    if not no_cache:
        existing = engine.find_by_hash(client, context.hash, INSTALLED_LABEL)
        if existing is not None:
            if tag not in existing.tags:
                engine.tag_image(client, existing, tag)
            return Built(tag, existing.id, context.hash, cached=True, weights=weights)
    build_args = context.build_args
    dockerfile = context.files["Dockerfile"]
    if isinstance(dockerfile, bytes) and UV_IMAGE.encode() in dockerfile:  # a builder stage that copies uv
        uv_image = ensure_uv_image(client, project.config.image.base, build_args, on_progress)
        build_args = {**build_args, UV_IMAGE_ARG: uv_image}
    with context.tar() as tar:
        try:
            image_id = engine.build(client, tar, tag, build_args, context.labels(), no_cache, on_progress)
        except BuildError as error:
            raise hash_mismatch(error) or without_cuda(project, error) or error from None
    if not context.installed_digest:  # resolved in the builder: label the image with what it got
        recorded = engine.read_file(client, image_id, INSTALLED_PATH)
        if recorded is None:
            raise BuildError(f"the image has no {INSTALLED_PATH}", "does your Dockerfile template keep the python_deps block?")
        digest = LockFile.parse(recorded.decode(), f"{tag}:{INSTALLED_PATH}").installed_digest()
        image_id = engine.relabel(client, image_id, tag, {INSTALLED_LABEL: digest})
    return Built(tag, image_id, context.hash, cached=False, weights=weights)


def build_separate_weights(project: Project, on_progress: Callable[[Progress], None]) -> WeightsArtifact | None:
    """image.weights: separate: the weights artifact, in the local store (weights.py)."""
    if not separate(project):
        return None
    paths = weight_paths(project)
    on_progress(Progress("output", f"weights artifact: {len(paths)} path(s) into {store()}"))
    return build_weights(project)


def ensure_uv_image(client: engine.Client, base: str, build_args: dict[str, str],
                    on_progress: Callable[[Progress], None]) -> str:
    """The id of the helper image the builder stage copies uv from: one these builds made and
    recorded (uv.trusted_uv_image), never one that only carries its tag. The tag is moved back
    to it (an impostor keeps its id, unused); with none on this engine the helper is made again,
    without the build cache, and recorded. Made once per engine, then one inspect per build."""
    tagged = engine.image_id(client, UV_IMAGE)
    trusted = trusted_uv_image(tagged, lambda image: engine.image_exists(client, image))
    if tagged is not None and trusted != tagged:
        on_progress(Progress("output", f"{UV_IMAGE} is {tagged[:19]}…, an image these builds did not make: not used"))
    if trusted is None:
        on_progress(Progress("output", f"making {UV_IMAGE} (once per engine): the uv every build installs with"))
        with uv_image_context(base, host_uv_for_images()) as tar:
            trusted = engine.build(client, tar, UV_IMAGE, build_args, {"conduit.tool": "uv"}, no_cache=True)
        record_uv_image(trusted)
    elif trusted != tagged:
        engine.tag_image(client, trusted, UV_IMAGE)
    return trusted


def check_lock(project: Project, locked: bool, on_progress: Callable[[Progress], None]) -> None:
    """`--locked`: conduit.lock must exist and fit conduit.yaml (exit 2 otherwise). Without it,
    a stale lock is resolved again (its pins kept where they still fit) before the build."""
    status = lock_status(project)
    fix = "run `conduit lock` and commit conduit.lock"
    if locked and not status.present:
        raise UsageError(f"--locked: there is no {status.path}", fix)
    if locked and status.stale:
        raise UsageError(f"--locked: {status.path} is stale: {'; '.join(status.stale)}", fix)
    if status.stale:
        on_progress(Progress("note", f"{status.path.name} is stale ({'; '.join(status.stale)}): locking again"))
        lock_project(project)


def hash_mismatch(error: BuildError) -> BuildError | None:
    """uv's hash failure (over several lines of the build log) as one line: which file, the
    hashes the lock allows and the one the index served, and what to do."""
    text = error.message
    found = re.search(r"Hash mismatch for `([^`]+)`", text)
    if found is None:
        return None
    expected = re.search(r"Expected:\s*((?:sha256:[0-9a-f]+\s*)+)", text)
    computed = re.search(r"Computed:\s*(sha256:[0-9a-f]+)", text)
    allowed = ", ".join(h[:19] + "…" for h in expected.group(1).split()) if expected else "?"
    served = computed.group(1)[:19] + "…" if computed else "?"
    return BuildError(f"conduit.lock: hash mismatch for {found.group(1)}: the lock allows {allowed}, the index served {served}",
                      "the lock was edited, or the index serves other files: check conduit.lock, or run `conduit lock` again")


def without_cuda(project: Project, error: BuildError) -> BuildError | None:
    """A CPU target that could not get the CPU build of torch, as one line with the fixes."""
    if project.config.hardware.gpu:
        return None
    problem = cpu_torch_unavailable(error.message)
    return BuildError(problem, CPU_TORCH_FIX) if problem else None


def push_image(project: Project, tag: str | None = None, environ: dict[str, str] | None = None) -> Pushed:
    """Push the image of the current context (or `tag`) to its repository."""
    env = os.environ if environ is None else environ
    if tag is None:
        if not project.config.image.repository:
            raise UsageError("image.repository is not set in conduit.yaml", "set it, e.g. localhost:5000/" + project.name)
        tag = default_tag(project)
    client = engine.client()
    if not engine.image_exists(client, tag):
        raise ConduitError(f"no image {tag} here", "run `conduit build` first")
    auth = None
    if env.get("CONDUIT_REGISTRY_USERNAME"):
        auth = {"username": env["CONDUIT_REGISTRY_USERNAME"], "password": env.get("CONDUIT_REGISTRY_PASSWORD", "")}
    digest = engine.push(client, tag, auth)
    # The weights of the current project (hashed again; a layer already in the store is not
    # written again), with whatever layers the registry lacks.
    weights = push_weights(build_weights(project), env) if separate(project) else None
    return Pushed(tag, digest, f"{engine.split_reference(tag).repository}@{digest}", weights)


def pushed_reference(project: Project) -> str:
    """`repository@sha256:…` of the current build, as the registry knows it (after `conduit push`)."""
    repository = project.config.image.repository
    if not repository:
        raise UsageError("image.repository is not set in conduit.yaml", "set it and run `conduit push`")
    tag = default_tag(project)
    client = engine.client()
    if not engine.image_exists(client, tag):
        raise ConduitError(f"no image {tag} here", "run `conduit build` and `conduit push` first")
    for reference in engine.repo_digests(client, tag):
        if engine.split_reference(reference).repository == repository:
            return reference
    raise ConduitError(f"{tag} has not been pushed to {repository}", "run `conduit push` first")


def pushed_weights(project: Project) -> str:
    """`<weights repository>@sha256:…` of the current weights, once the registry has them
    (after `conduit push`): the pin a deployment names next to the image."""
    from .registry import Client, Repository

    artifact = build_weights(project)  # the local store's copy: only hashed when unchanged
    try:
        with Client(Repository.parse(artifact.repository), os.environ) as client:
            client.get_manifest(artifact.digest)
    except ConduitError:
        raise ConduitError(f"the weights {artifact.reference} are not in the registry", "run `conduit push` first") from None
    return artifact.pinned

"""`conduit build` and `conduit push`: render, then build through the SDK unless an
image of the same context hash exists already (a no-op rebuild answers at once);
push to image.repository and find what was pushed."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Project
from ..errors import ConduitError, UsageError
from . import engine
from .context import render
from .engine import Progress


@dataclass(frozen=True)
class Built:
    tag: str
    image_id: str
    context_hash: str
    cached: bool  # an image with this context hash existed already


@dataclass(frozen=True)
class Pushed:
    tag: str
    digest: str  # sha256:…
    reference: str  # repository@sha256:…, what deploy runs


def default_tag(project: Project, context_hash: str | None = None) -> str:
    """<image.repository or name>:<context hash[:12]>, of the current context unless given."""
    repository = project.config.image.repository or project.config.name
    return f"{repository}:{(context_hash or render(project).hash)[:12]}"


def build_image(project: Project, tag: str | None = None, no_cache: bool = False,
                on_progress: Callable[[Progress], None] = lambda event: None) -> Built:
    context = render(project)
    tag = tag or default_tag(project, context.hash)
    client = engine.client()
    if not no_cache:
        existing = engine.find_by_hash(client, context.hash)
        if existing is not None:
            if tag not in existing.tags:
                engine.tag_image(client, existing, tag)
            return Built(tag, existing.id, context.hash, cached=True)
    with context.tar() as tar:
        image_id = engine.build(client, tar, tag, context.build_args, context.labels(), no_cache, on_progress)
    return Built(tag, image_id, context.hash, cached=False)


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
    return Pushed(tag, digest, f"{engine.split_reference(tag).repository}@{digest}")


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

"""`conduit build`: render, then build through the SDK unless an image of the
same context hash exists already (a no-op rebuild answers at once)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import docker_engine
from .config import Project
from .docker_engine import Progress
from .errors import ConduitError, UsageError
from .render import render


@dataclass(frozen=True)
class Built:
    tag: str
    image_id: str
    context_hash: str
    cached: bool  # an image with this context hash existed already


def default_tag(project: Project, context_hash: str) -> str:
    repository = project.config.image.repository or project.config.name
    return f"{repository}:{context_hash[:12]}"


def build_image(
    project: Project,
    tag: str | None = None,
    no_cache: bool = False,
    on_progress: Callable[[Progress], None] = lambda event: None,
) -> Built:
    context = render(project)
    context_hash = context.hash
    tag = tag or default_tag(project, context_hash)
    engine = docker_engine.client()
    if not no_cache:
        existing = docker_engine.find_by_hash(engine, context_hash)
        if existing is not None:
            if tag not in existing.tags:
                docker_engine.tag_image(engine, existing, tag)
            return Built(tag, existing.id, context_hash, cached=True)
    image_id = docker_engine.build(engine, context, tag, no_cache=no_cache, on_progress=on_progress)
    return Built(tag, image_id, context_hash, cached=False)


def push_image(project: Project, tag: str | None = None, environ: dict[str, str] | None = None) -> tuple[str, str]:
    """Push the image of the current context to image.repository; (tag, digest)."""
    import os

    env = os.environ if environ is None else environ
    repository = project.config.image.repository
    if tag is None:
        if not repository:
            raise UsageError("image.repository is not set in conduit.yaml", "set it, e.g. localhost:5000/" + project.name)
        tag = default_tag(project, render(project).hash)
    engine = docker_engine.client()
    if not docker_engine.image_exists(engine, tag):
        raise ConduitError(f"no image {tag} here", "run `conduit build` first")
    auth = None
    if env.get("CONDUIT_REGISTRY_USERNAME"):
        auth = {"username": env["CONDUIT_REGISTRY_USERNAME"], "password": env.get("CONDUIT_REGISTRY_PASSWORD", "")}
    return tag, docker_engine.push(engine, tag, auth)


def pushed_reference(project: Project) -> str:
    """`repository@sha256:…` of the current build, as the registry knows it (after `conduit push`)."""
    repository = project.config.image.repository
    if not repository:
        raise UsageError("image.repository is not set in conduit.yaml", "set it and run `conduit push`")
    tag = default_tag(project, render(project).hash)
    engine = docker_engine.client()
    if not docker_engine.image_exists(engine, tag):
        raise ConduitError(f"no image {tag} here", "run `conduit build` and `conduit push` first")
    for reference in docker_engine.repo_digests(engine, tag):
        if reference.rpartition("@")[0] == repository:
            return reference
    raise ConduitError(f"{tag} has not been pushed to {repository}", "run `conduit push` first")

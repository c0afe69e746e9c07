"""`conduit deploy --target docker|kubernetes|kserve`: a health-gated rollout on a Docker
host, or manifests pinned by digest for GitOps."""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict
from pathlib import Path

from ..config import Project
from ..errors import UsageError
from .output import emit, note, project
from .parser import Commands, command, weights_reference


def run(args: argparse.Namespace) -> int:
    loaded = project(args)
    if args.target in ("kubernetes", "kserve"):
        return manifests(args, loaded)
    from ..deploy import docker

    say = note if args.json else print
    if args.rollback:
        running = docker.rollback(loaded, say)
    else:
        from ..image.build import pushed_reference

        reference = args.image or pushed_reference(loaded)
        running = docker.deploy(loaded, reference, deploy_key(loaded, args.key_file), say, args.weights)
    text = f"{running.name}: {running.image} ready on port {running.port}"
    if running.weights:
        text += f" (weights {running.weights})"
    emit(args, asdict(running), text)
    return 0


def manifests(args: argparse.Namespace, loaded: Project) -> int:
    from ..deploy.kubernetes import deploy_manifests

    deployed = deploy_manifests(loaded, args.image, Path(args.out) if args.out else None, args.target, args.apply,
                                args.weights)
    written = deployed.written
    payload = {**asdict(written), "out": shown(written.out), "files": [shown(p) for p in written.files],
               "removed": [shown(p) for p in written.removed], "applied": deployed.applied_to}
    lines = [f"wrote {shown(p)}" for p in written.files] + [f"removed {shown(p)}" for p in written.removed]
    lines.append(f"image: {written.image}")
    if written.weights:
        lines.append(f"weights: {written.weights}")
    if deployed.applied_to:
        lines.append(f"applied to {deployed.applied_to}")
    emit(args, payload, "\n".join(lines))
    return 0


def shown(path: Path) -> str:
    """Relative to the current folder where it lies below it, as a user typed it."""
    absolute, cwd = path.absolute(), Path.cwd()
    return os.path.relpath(absolute, cwd) if absolute.is_relative_to(cwd) else str(absolute)


def deploy_key(loaded: Project, key_file: str | None) -> str:
    """The API key from the operator: a key file, or the variable named by server.api_key_env."""
    if key_file:
        try:
            key = Path(key_file).read_text().strip()
        except OSError as exc:
            raise UsageError(f"cannot read the key file {key_file}: {exc.strerror}") from None
    else:
        key = os.environ.get(loaded.config.server.api_key_env, "")
    if not key:
        raise UsageError("no API key to deploy with", f"set {loaded.config.server.api_key_env} or pass --key-file FILE")
    return key


def add(commands: Commands) -> None:
    sub = command(commands, "deploy", run, "roll out: a Docker host (health-gated) or Kubernetes manifests")
    sub.add_argument("--target", required=True, choices=["docker", "kubernetes", "kserve"])
    sub.add_argument("--image", metavar="REF", help="repository@sha256:… (default: the pushed current build)")
    sub.add_argument("--rollback", action="store_true", help="docker: return to the previous version")
    sub.add_argument("--key-file", metavar="FILE", help="docker: read the API key from FILE (default: server.api_key_env)")
    sub.add_argument("--apply", action="store_true", help="kubernetes: kubectl apply the manifests")
    sub.add_argument("--out", metavar="DIR", help="kubernetes: write here instead of deploy.kubernetes.out")
    sub.add_argument("--weights", metavar="REFERENCE", type=weights_reference,
                     help="the weights artifact of an image built with image.weights: separate, as "
                          "<registry>/<repository>@sha256:<digest> (default: the current project's pushed weights); "
                          "docker: fetched once per host and mounted read-only; kubernetes, kserve: the pods fetch "
                          "it in an init container, or mount it with deploy.kubernetes.image_volume: true")

"""`conduit deploy --target docker`: a health-gated rollout on one Docker host.

    conduit-<name>            the live version, on deploy.docker.port
    conduit-<name>-previous   the version before it, stopped, kept for --rollback
    conduit-<name>-candidate  a new version proving it gets ready, on a private port

A new version first runs as the candidate with the live one untouched; only
once the candidate reports /ready does it replace the live container. If it
never does, the candidate is removed, its logs are printed, and the old
version keeps serving. Readiness is probed from inside the container (an exec
through the engine), so it works the same on unix://, tcp:// and ssh:// hosts.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import docker

from .. import docker_engine
from ..config import Project
from ..errors import DeployError, EngineError

APP_LABEL = "conduit.deploy"  # the project name
IMAGE_LABEL = "conduit.image"  # repository@sha256:… it runs
PROBE = "import sys, urllib.request\ntry:\n    urllib.request.urlopen('http://127.0.0.1:{port}/ready', timeout=2)\nexcept Exception as exc:\n    print(getattr(exc, 'read', lambda: str(exc).encode())().decode(errors='replace')[:300])\n    sys.exit(1)\n"


@dataclass(frozen=True)
class Running:
    name: str
    image: str
    state: str
    ready: bool
    uptime_s: float
    port: int | None


def engine_for(project: Project) -> docker.DockerClient:
    """deploy.docker.host, else DOCKER_HOST, else the local socket."""
    host = project.config.deploy.docker.host
    with docker_engine.engine_errors(f"connect to {host or os.environ.get('DOCKER_HOST') or 'the local engine'}"):
        if host:
            engine = docker.DockerClient(base_url=host, use_ssh_client=host.startswith("ssh://"), timeout=600)
        else:
            engine = docker.from_env(timeout=600)
        engine.ping()
        return engine


def names(project: Project) -> tuple[str, str, str]:
    base = f"conduit-{project.name}"
    return base, f"{base}-previous", f"{base}-candidate"


def probe(container: Any, port: int) -> tuple[bool, str]:
    """(ready, why not) from GET /ready inside the container."""
    if not docker_engine.reload(container):
        return False, "the container is gone"
    if container.status != "running":
        return False, f"the container is {container.status} (exit {container.attrs['State'].get('ExitCode')})"
    code, output = docker_engine.exec_in(container, ["python3", "-c", PROBE.format(port=port)], user="10001")
    return code == 0, output


def wait_ready(container: Any, port: int, timeout_s: float) -> str | None:
    """None once ready; else the reason it is not. Gives up early when it cannot become ready."""
    deadline = time.monotonic() + timeout_s
    reason = "no answer yet"
    while time.monotonic() < deadline:
        ready, reason = probe(container, port)
        if ready:
            return None
        if "start-up failed" in reason or "the container is exited" in reason or "is dead" in reason:
            return reason
        time.sleep(0.25)
    return f"not ready within {timeout_s:g} s (last: {reason})"


def start(engine: docker.DockerClient, project: Project, reference: str, api_key: str, name: str,
          host_port: int | None) -> Any:
    """The live container on `host_port`, or (None) the candidate: a private port, no restarts."""
    config, restart = project.config, project.config.deploy.docker.restart
    options: dict[str, Any] = {"name": name, "labels": {APP_LABEL: project.name, IMAGE_LABEL: reference}}
    if host_port is not None and restart != "no":
        options["restart_policy"] = {"Name": restart}
    environment = {**config.env, config.server.api_key_env: api_key}
    return docker_engine.run(engine, reference, environment, config.server.port, config.hardware.gpu,
                             host_port, **options)


def deploy(project: Project, reference: str, api_key: str, say: Callable[[str], None] = print) -> Running:
    """Roll `reference` out; the old version keeps serving unless the new one gets ready."""
    engine = engine_for(project)
    live_name, _, candidate_name = names(project)
    port, timeout_s = project.config.server.port, project.config.deploy.docker.ready_timeout_s
    docker_engine.ensure_image(engine, reference)
    stale = docker_engine.container_named(engine, candidate_name)
    if stale is not None:
        docker_engine.remove(stale)
    say(f"starting {reference} as {candidate_name} …")
    candidate = start(engine, project, reference, api_key, candidate_name, host_port=None)
    try:
        problem = wait_ready(candidate, port, timeout_s)
        if problem is not None:
            logs = docker_engine.logs(candidate)
            raise DeployError(f"{reference} never reported /ready ({problem}); the old version keeps serving."
                              f"\nits log ends with:\n{logs}")
    finally:
        docker_engine.remove(candidate)
    say("the new version is ready: replacing the live container")
    return swap_in(engine, project, lambda: start(engine, project, reference, api_key, live_name,
                                                  project.config.deploy.docker.port))


def swap_in(engine: docker.DockerClient, project: Project, start_new: Callable[[], Any]) -> Running:
    """Stop the live container (kept as -previous), start the new one; put the old one back if it fails."""
    live_name, previous_name, _ = names(project)
    port, timeout_s = project.config.server.port, project.config.deploy.docker.ready_timeout_s
    old = docker_engine.container_named(engine, live_name)
    older = docker_engine.container_named(engine, previous_name)
    if old is not None:
        if older is not None:
            docker_engine.remove(older)
        with docker_engine.engine_errors(f"stop {live_name}"):
            old.stop(timeout=10)
            old.rename(previous_name)
    new = start_new()
    problem = wait_ready(new, port, timeout_s)
    if problem is None:
        return describe(new, port)
    logs = docker_engine.logs(new)
    docker_engine.remove(new)
    if old is not None:
        with docker_engine.engine_errors(f"restore {live_name}"):
            old.rename(live_name)
            old.start()
    raise DeployError(f"the new container did not get ready ({problem}); the old version is back.\n{logs}")


def rollback(project: Project, say: Callable[[str], None] = print) -> Running:
    """Return to the previous version; the current one becomes the previous."""
    engine = engine_for(project)
    live_name, previous_name, _ = names(project)
    previous = docker_engine.container_named(engine, previous_name)
    if previous is None:
        raise DeployError(f"there is no previous version of {project.name} on this host to return to")
    say(f"returning to {previous.labels.get(IMAGE_LABEL, previous_name)} …")
    parked = f"{live_name}-rollback"
    with docker_engine.engine_errors("rename for rollback"):
        previous.rename(parked)

    def start_previous() -> Any:
        with docker_engine.engine_errors(f"start {live_name}"):
            previous.rename(live_name)
            previous.start()
        return previous

    try:
        return swap_in(engine, project, start_previous)
    except DeployError:
        with contextlib.suppress(DeployError, EngineError), docker_engine.engine_errors("rename back"):
            previous.rename(previous_name)  # leave the pair as it was
        raise


def describe(container: Any, port: int) -> Running:
    container.reload()
    state = container.attrs["State"]
    # Docker writes nanoseconds; Python reads at most microseconds.
    started_at = re.sub(r"(\.\d{6})\d*", r"\1", state.get("StartedAt", "")).replace("Z", "+00:00")
    started = datetime.fromisoformat(started_at) if state.get("Running") else None
    bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp") or []
    ready = probe(container, port)[0] if state.get("Running") else False
    return Running(
        name=container.name,
        image=container.labels.get(IMAGE_LABEL, container.image.tags[0] if container.image.tags else "?"),
        state=state.get("Status", "?"),
        ready=ready,
        uptime_s=(datetime.now(UTC) - started).total_seconds() if started else 0.0,
        port=int(bindings[0]["HostPort"]) if bindings else None,
    )


def status(project: Project) -> list[Running]:
    """What runs on the host for this project: the live version and the one kept for rollback."""
    engine = engine_for(project)
    with docker_engine.engine_errors("list containers"):
        containers = engine.containers.list(all=True, filters={"label": f"{APP_LABEL}={project.name}"})
    return sorted((describe(c, project.config.server.port) for c in containers), key=lambda r: r.name)

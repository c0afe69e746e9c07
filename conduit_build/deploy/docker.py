"""`conduit deploy --target docker`: a health-gated rollout on one Docker host.

    conduit-<name>            the live version, on deploy.docker.port
    conduit-<name>-previous   the version before it, stopped, kept for --rollback
    conduit-<name>-candidate  a new version loading its model, the live one untouched

The candidate is created with the live port in its configuration but started on an
internal network, where Docker publishes no port; it loads and warms up there while
the live version keeps serving. Only once it reports /ready is the live container
stopped and the candidate connected to the default bridge, which publishes its port:
the swap costs the stop of the old server and a network connect (about a second),
never the model's load time. If the candidate never gets ready, it is removed and
its log shown. When deploy.docker.port changed, the candidate takes the new port
before the old version stops, so a taken port leaves the old one serving; on the same
port, the old one is started again if the candidate cannot take it. The old version
is never stopped before a new one is ready to replace it.
Readiness is probed from inside the container (an exec through the engine), so it
works the same on unix://, tcp:// and ssh:// hosts.

An image built with image.weights: separate gets its weights pinned by digest (the current
project's, or `--weights`), as image/weights_host.py makes them ready on the host before the candidate
starts: the build tool's checked tree mounted read-only on a local engine, or fetched once into
the host's `conduit-weights` volume on a remote one. The candidate loads them from that folder
(no network needed on the standby network); two containers of the same weights share one copy,
and a retrain is a new candidate of the same image: nothing of the image is pulled again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conduit_runtime.errors import STARTUP_FAILED

from ..config import Project
from ..config.schema import Server
from ..errors import DeployError, EngineError
from ..image import engine
from ..image.weights_host import Weights, for_container

APP_LABEL = "conduit.deploy"  # the project name
IMAGE_LABEL = "conduit.image"  # repository@sha256:… it runs
WEIGHTS_LABEL = "conduit.weights-artifact"  # weights-repository@sha256:… it loads (image.weights: separate)
PROBE = """import json, sys, urllib.request
try:
    urllib.request.urlopen('http://127.0.0.1:{port}/ready', timeout=2)
except Exception as exc:
    try:
        error = json.loads(exc.read())['error']
        print(error['code'], error['message'][:300])
    except Exception:
        print('no_answer', str(exc)[:300])
    sys.exit(1)
"""


@dataclass(frozen=True)
class Running:
    name: str
    image: str
    state: str
    ready: bool
    uptime_s: float
    port: int | None
    weights: str | None = None  # weights-repository@sha256:… (image.weights: separate)


def names(project: Project) -> tuple[str, str, str]:
    base = f"conduit-{project.name}"
    return base, f"{base}-previous", f"{base}-candidate"


def probe(container: Any, port: int) -> tuple[bool, bool, str]:
    """(ready, will never be, why not) from GET /ready inside the container."""
    if not engine.reload(container):
        return False, True, "the container is gone"
    if container.status != "running":
        return False, True, f"the container is {container.status} (exit {container.attrs['State'].get('ExitCode')})"
    code, output = engine.exec_in(container, ["python3", "-c", PROBE.format(port=port)], user="10001")
    error_code, _, message = output.partition(" ")
    return code == 0, error_code == STARTUP_FAILED, message or output


def wait_ready(container: Any, port: int, timeout_s: float) -> str | None:
    """None once ready; else the reason it is not. Gives up early when it cannot become ready."""
    deadline = time.monotonic() + timeout_s
    reason = "no answer yet"
    while time.monotonic() < deadline:
        ready, never, reason = probe(container, port)
        if ready:
            return None
        if never:
            return reason
        time.sleep(0.25)
    return f"not ready within {timeout_s:g} s (last: {reason})"


def start_standby(client: engine.Client, project: Project, reference: str, api_key: str, name: str,
                  weights: Weights | None = None) -> Any:
    """A container that will publish deploy.docker.port, started where it publishes nothing yet."""
    config = project.config
    environment = {**config.env, config.server.api_key_env: api_key}
    labels = {APP_LABEL: project.name, IMAGE_LABEL: reference}
    options: dict[str, Any] = {}
    if weights is not None:
        environment.update(weights.environment)
        labels[WEIGHTS_LABEL] = weights.pin.reference
        options["volumes"] = weights.volumes
    container = engine.create(
        client, reference, environment, config.server.port,
        gpus=config.hardware.count if config.hardware.gpu else 0, host_port=config.deploy.docker.port,
        name=name, labels=labels, network=engine.standby_network(client), **options,
    )
    try:
        with engine.engine_errors(f"start {name}"):
            container.start()
    except BaseException:
        engine.remove(container)
        raise
    return container


def deploy(project: Project, reference: str, api_key: str, say: Callable[[str], None] = lambda text: None,
           weights_reference: str | None = None) -> Running:
    """Roll `reference` out; the old version keeps serving until the new one is ready. With
    image.weights: separate, its weights (`weights_reference`, else the current project's) are
    made ready on the host first (image/weights_host.py)."""
    host = project.config.deploy.docker.host
    client = engine.client(host)
    _, _, candidate_name = names(project)
    engine.ensure_image(client, reference)
    weights = for_container(client, reference, project, host, weights_reference)
    if weights is not None:
        say(f"weights {weights.pin.reference}: ready on the host ({weights.source})")
    stale = engine.container_named(client, candidate_name)
    if stale is not None:
        engine.remove(stale)
    say(f"starting {reference} as {candidate_name} …")
    candidate = start_standby(client, project, reference, api_key, candidate_name, weights)
    try:
        problem = wait_ready(candidate, project.config.server.port, project.config.deploy.docker.ready_timeout_s)
        if problem is not None:
            raise DeployError(f"{reference} never reported /ready ({problem}); the old version keeps serving."
                              f"\nits log ends with:\n{engine.logs(candidate)}")
        say("the new version is ready: swapping it in")
        return promote(client, project, candidate)
    except BaseException:
        engine.remove(candidate)
        raise


def promote(client: engine.Client, project: Project, new: Any) -> Running:
    """Give `new`, which is ready, the live port; the live container is stopped (after its requests
    in flight) and kept as -previous. On another port, `new` publishes first and the old one stops
    only then; on the same port the old one must stop first, and is started again if `new` then
    cannot take the port."""
    live_name, previous_name, _ = names(project)
    docker_config = project.config.deploy.docker
    old = engine.container_named(client, live_name)
    if old is not None:
        older = engine.container_named(client, previous_name)
        if older is not None and older.id != new.id:
            engine.remove(older)
    if old is not None and engine.published_port(old) != engine.published_port(new):
        try:
            engine.publish(new)
        except EngineError as error:
            raise DeployError(f"the new version could not take port {docker_config.port} ({error.message}); "
                              "the old version keeps serving") from error
        retire(old, previous_name, project.config.server)
    else:
        if old is not None:
            retire(old, previous_name, project.config.server)
        try:
            engine.publish(new)
        except EngineError as error:
            back = restore(old, live_name)
            raise DeployError(f"the new version could not take port {docker_config.port} ({error.message}); {back}") from error
    with engine.engine_errors(f"make {new.name} the live container"):
        new.rename(live_name)
        if docker_config.restart != "no":
            new.update(restart_policy={"Name": docker_config.restart})
    engine.leave_standby(new)
    return describe(new, project.config.server.port)


def retire(old: Any, previous_name: str, server: Server) -> None:
    """Stop the live container, after the requests in flight, and keep it for --rollback."""
    with engine.engine_errors(f"stop {old.name}"):
        old.stop(timeout=server.stop_grace_s)
        old.rename(previous_name)



def restore(old: Any | None, live_name: str) -> str:
    """Put the old live container back; what the user should know about it."""
    if old is None:
        return "nothing ran before"
    try:
        with engine.engine_errors(f"restart {live_name}"):
            old.rename(live_name)
            old.start()
    except EngineError as error:
        return f"and the old version could not be started again either: {error.message}"
    return "the old version is back"


def rollback(project: Project, say: Callable[[str], None] = lambda text: None) -> Running:
    """Return to the previous version the same way: it loads beside the live one, then swaps in."""
    client = engine.client(project.config.deploy.docker.host)
    _, previous_name, candidate_name = names(project)
    previous = engine.container_named(client, previous_name)
    if previous is None:
        raise DeployError(f"there is no previous version of {project.name} on this host to return to")
    say(f"returning to {previous.labels.get(IMAGE_LABEL, previous_name)} …")
    stale = engine.container_named(client, candidate_name)
    if stale is not None:
        engine.remove(stale)
    engine.unpublish(previous)
    with engine.engine_errors(f"start {previous_name}"):
        previous.rename(candidate_name)
        previous.start()
    problem = wait_ready(previous, project.config.server.port, project.config.deploy.docker.ready_timeout_s)
    try:
        if problem is not None:
            raise DeployError(f"the previous version did not get ready ({problem}); the live version keeps serving."
                              f"\n{engine.logs(previous)}")
        return promote(client, project, previous)
    except BaseException:
        with engine.engine_errors(f"put {previous_name} back"):  # stopped, as it was
            previous.stop(timeout=10)
            previous.rename(previous_name)
        raise


def describe(container: Any, port: int) -> Running:
    with engine.engine_errors(f"inspect {container.name}"):
        container.reload()
        state = container.attrs["State"]
        bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp") or []
        image = container.labels.get(IMAGE_LABEL) or (container.image.tags or ["?"])[0]
        weights = container.labels.get(WEIGHTS_LABEL)
    # Docker writes nanoseconds; Python reads at most microseconds.
    started_at = re.sub(r"(\.\d{6})\d*", r"\1", state.get("StartedAt", "")).replace("Z", "+00:00")
    started = datetime.fromisoformat(started_at) if state.get("Running") else None
    return Running(
        name=container.name,
        image=image,
        state=state.get("Status", "?"),
        ready=probe(container, port)[0] if state.get("Running") else False,
        uptime_s=(datetime.now(UTC) - started).total_seconds() if started else 0.0,
        port=int(bindings[0]["HostPort"]) if bindings else None,
        weights=weights,
    )


def status(project: Project) -> list[Running]:
    """What runs on the host for this project: the live version and the one kept for rollback."""
    client = engine.client(project.config.deploy.docker.host)
    containers = engine.list_containers(client, f"{APP_LABEL}={project.name}")
    return sorted((describe(c, project.config.server.port) for c in containers), key=lambda r: r.name)

"""The Docker SDK, and the only module that imports docker.errors.

`engine_errors()` turns every SDK or connection error into a Conduit error with
a hint; the rest of the build tool never sees a docker exception.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests.exceptions

from .errors import BuildError, EngineError, RegistryError
from .render import BuildContext

STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


@contextlib.contextmanager
def engine_errors(action: str) -> Iterator[None]:
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise EngineError(f"{action}: image not found: {exc.explanation}", "run `conduit build` first") from exc
    except docker.errors.APIError as exc:
        raise EngineError(f"{action}: the engine refused: {exc.explanation or exc}") from exc
    except (docker.errors.DockerException, requests.exceptions.ConnectionError) as exc:
        raise EngineError(
            f"{action}: cannot reach the Docker engine ({exc})",
            "start it (scripts/engine does) or set DOCKER_HOST",
        ) from exc


def client() -> docker.DockerClient:
    with engine_errors("connect"):
        engine = docker.from_env(timeout=600)
        engine.ping()
        return engine


@dataclass(frozen=True)
class Progress:
    """One event of a build, for the CLI to print (or emit as JSON)."""

    kind: str  # step | output | done | error
    text: str
    step: int = 0
    steps: int = 0


def find_by_hash(engine: docker.DockerClient, context_hash: str) -> Any | None:
    with engine_errors("look up images"):
        images = engine.images.list(filters={"label": f"conduit.context-hash={context_hash}"})
    return images[0] if images else None


def build(
    engine: docker.DockerClient,
    context: BuildContext,
    tag: str,
    no_cache: bool = False,
    on_progress: Callable[[Progress], None] = lambda event: None,
) -> str:
    """Build through the legacy builder, streaming progress; the image id."""
    current, log_tail = Progress("step", "", 0, 0), list[str]()
    image_id = ""
    with engine_errors("build"):
        stream = engine.api.build(
            fileobj=context.tar(),
            custom_context=True,
            tag=tag,
            buildargs=context.build_args,
            labels=context.labels(),
            nocache=no_cache,
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                on_progress(Progress("error", chunk["error"].strip(), current.step, current.steps))
                tail = "\n".join(log_tail[-20:])
                raise BuildError(
                    f"step {current.step}/{current.steps} failed: {current.text}\n{tail}\n{chunk['error'].strip()}",
                )
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            for line in chunk.get("stream", "").splitlines():
                match = STEP.match(line)
                if match:
                    current = Progress("step", match.group(3), int(match.group(1)), int(match.group(2)))
                    log_tail.clear()
                    on_progress(current)
                elif line.strip():
                    log_tail.append(line)
                    on_progress(Progress("output", line, current.step, current.steps))
    with engine_errors("inspect the new image"):
        image_id = image_id or engine.images.get(tag).id
    on_progress(Progress("done", tag, current.steps, current.steps))
    return image_id


def image_exists(engine: docker.DockerClient, tag: str) -> bool:
    try:
        engine.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False
    except (docker.errors.DockerException, requests.exceptions.ConnectionError) as exc:
        raise EngineError(f"inspect {tag}: {exc}") from exc


def container_named(engine: docker.DockerClient, name: str) -> Any | None:
    try:
        return engine.containers.get(name)
    except docker.errors.NotFound:
        return None
    except (docker.errors.DockerException, requests.exceptions.ConnectionError) as exc:
        raise EngineError(f"inspect {name}: {exc}") from exc


def ensure_image(engine: docker.DockerClient, reference: str) -> None:
    """Pull `reference` unless the engine has it already."""
    try:
        engine.images.get(reference)
    except docker.errors.ImageNotFound:
        try:
            engine.images.pull(reference)
        except docker.errors.APIError as exc:
            raise RegistryError(f"pull {reference}: {exc.explanation or exc}", registry_hint(str(exc))) from exc


def exec_in(container: Any, command: list[str], user: str | None = None) -> tuple[int, str]:
    """(exit code, output) of a command inside a running container; (-1, why) when it cannot run."""
    try:
        result = container.exec_run(command, user=user or "")
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        return -1, str(exc)
    return int(result.exit_code), result.output.decode(errors="replace").strip()


def reload(container: Any) -> bool:
    """Refresh the container's attributes; False when it is gone."""
    try:
        container.reload()
        return True
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return False


def repo_digests(engine: docker.DockerClient, tag: str) -> list[str]:
    with engine_errors(f"inspect {tag}"):
        return list(engine.images.get(tag).attrs.get("RepoDigests") or [])


def tag_image(engine: docker.DockerClient, image: Any, tag: str) -> None:
    repository, _, version = tag.rpartition(":")
    with engine_errors("tag"):
        image.tag(repository, version)


def create(engine: docker.DockerClient, image: str, environment: dict[str, str], port: int, gpu: bool = False,
           host_port: int | None = None, **options: Any) -> Any:
    """A container with `port` published on `host_port` (all interfaces), or without one on an
    ephemeral port of 127.0.0.1; GPU targets ask the engine for every GPU through a device request."""
    device_requests = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])] if gpu else None
    published: Any = host_port if host_port is not None else ("127.0.0.1", None)
    with engine_errors("create a container"):
        return engine.containers.create(
            image,
            environment=environment,
            ports={f"{port}/tcp": published},
            device_requests=device_requests,
            **options,
        )


def run(engine: docker.DockerClient, image: str, environment: dict[str, str], port: int, gpu: bool = False,
        host_port: int | None = None, **options: Any) -> Any:
    container = create(engine, image, environment, port, gpu, host_port, **options)
    try:
        with engine_errors("start the container"):
            container.start()
    except BaseException:
        remove(container)
        raise
    return container


def host_port(container: Any, port: int) -> int:
    with engine_errors("inspect the container"):
        container.reload()
        return int(container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"])


def remove(container: Any) -> None:
    with contextlib.suppress(docker.errors.DockerException, requests.exceptions.RequestException):
        container.remove(force=True)


def logs(container: Any, tail: int = 50) -> str:
    with contextlib.suppress(docker.errors.DockerException, requests.exceptions.RequestException):
        return str(container.logs(tail=tail).decode(errors="replace"))
    return ""


def push(engine: docker.DockerClient, tag: str, auth: dict[str, str] | None) -> str:
    """Push `tag`; its digest (sha256:…)."""
    repository, _, version = tag.rpartition(":")
    digest = ""
    try:
        for event in engine.api.push(repository, tag=version, stream=True, decode=True, auth_config=auth):
            if "error" in event:
                raise RegistryError(f"push {tag}: {event['error']}", registry_hint(event["error"]))
            digest = event.get("aux", {}).get("Digest", digest)
    except docker.errors.APIError as exc:
        raise RegistryError(f"push {tag}: {exc.explanation or exc}", registry_hint(str(exc))) from exc
    except (docker.errors.DockerException, requests.exceptions.ConnectionError) as exc:
        raise EngineError(f"push: cannot reach the Docker engine ({exc})") from exc
    if not digest:
        raise RegistryError(f"push {tag}: the registry returned no digest")
    return digest


def registry_hint(message: str) -> str:
    text = message.lower()
    if "unauthorized" in text or "authentication" in text or "denied" in text:
        return "log in (docker login) or set CONDUIT_REGISTRY_USERNAME and CONDUIT_REGISTRY_PASSWORD"
    if "connection refused" in text or "no such host" in text or "dial tcp" in text:
        return "is the registry running and is image.repository right?"
    return "check image.repository"

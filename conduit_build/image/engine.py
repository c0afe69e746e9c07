"""The Docker SDK: the only module of the build tool that imports `docker`.

It owns the clients, the parsing of image references, Docker's .dockerignore
matching, and the mapping of every `docker.errors` (and connection) exception
to a Conduit error with a hint (`engine_errors`); no other module sees a
docker exception.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
import docker.types
import docker.utils
import docker.utils.build
import requests.exceptions
from docker import DockerClient as Client

from ..errors import BuildError, EngineError, RegistryError

STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STANDBY_NETWORK = "conduit-standby"  # internal: a container on it alone publishes no port


@contextlib.contextmanager
def engine_errors(action: str) -> Iterator[None]:
    """Every SDK or connection error inside the block becomes an EngineError (RegistryError
    for pushes and pulls) that says what was being done."""
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise EngineError(f"{action}: image not found: {exc.explanation}", "run `conduit build` first") from exc
    except docker.errors.NotFound as exc:
        raise EngineError(f"{action}: {exc.explanation or exc}") from exc
    except docker.errors.APIError as exc:
        raise EngineError(f"{action}: the engine refused: {exc.explanation or exc}") from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise EngineError(
            f"{action}: cannot reach the Docker engine ({exc})", "start it (scripts/engine does) or set DOCKER_HOST",
        ) from exc


def client(host: str | None = None) -> Client:
    """The engine at `host` (unix://, tcp://, ssh://), else DOCKER_HOST, else the local socket."""
    where = host or os.environ.get("DOCKER_HOST") or "the local engine"
    with engine_errors(f"connect to {where}"):
        if host:
            engine = docker.DockerClient(base_url=host, use_ssh_client=host.startswith("ssh://"), timeout=600)
        else:
            engine = docker.from_env(timeout=600)
        engine.ping()
        return engine


# -- references and .dockerignore ----------------------------------------------------


@dataclass(frozen=True)
class Reference:
    repository: str  # localhost:5000/iris
    tag: str | None = None
    digest: str | None = None  # sha256:…


def split_reference(reference: str) -> Reference:
    """The SDK's own parsing: `localhost:5000/iris` has no tag, `…/iris:v1` has, `…@sha256:…` a digest."""
    repository, version = docker.utils.parse_repository_tag(reference)
    if version is not None and version.startswith("sha256:") and "@" in reference:
        return Reference(repository, digest=version)
    return Reference(repository, tag=version)


def unignored(root: Path, patterns: list[str]) -> list[str]:
    """The paths under `root` (relative, POSIX) that .dockerignore `patterns` leave in, as Docker decides."""
    return sorted(Path(p).as_posix() for p in docker.utils.build.PatternMatcher(patterns).walk(str(root)))


# -- images --------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """One event of a build, for the CLI to print (or emit as JSON)."""

    kind: str  # step | output | done | error
    text: str
    step: int = 0
    steps: int = 0


def find_by_hash(engine: Client, context_hash: str, *labels: str) -> Any | None:
    """An image labelled with this context hash (and carrying `labels`, whatever their values)."""
    with engine_errors("look up images"):
        images = engine.images.list(filters={"label": [f"conduit.context-hash={context_hash}", *labels]})
    return images[0] if images else None


def build(engine: Client, tar: IO[bytes], tag: str, build_args: dict[str, str], labels: dict[str, str],
          no_cache: bool = False, on_progress: Callable[[Progress], None] = lambda event: None) -> str:
    """Build a context tar through the legacy builder, streaming progress; the image id."""
    current, step_log = Progress("step", "", 0, 0), ""
    image_id = ""
    with engine_errors("build"):
        stream = engine.api.build(fileobj=tar, custom_context=True, tag=tag, buildargs=build_args, labels=labels,
                                  nocache=no_cache, rm=True, forcerm=True, decode=True)
        for chunk in stream:
            if "error" in chunk:
                on_progress(Progress("error", chunk["error"].strip(), current.step, current.steps))
                # the step's output as it was written (the engine splits it anywhere, and colours stderr)
                tail = "\n".join(line for line in step_log.splitlines() if line.strip())
                tail = "\n".join(tail.splitlines()[-20:])
                raise BuildError(f"step {current.step}/{current.steps} failed: {current.text}\n{tail}\n{chunk['error'].strip()}")
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            text = ANSI.sub("", chunk.get("stream", ""))
            for line in text.splitlines():
                match = STEP.match(line)
                if match:
                    current = Progress("step", match.group(3), int(match.group(1)), int(match.group(2)))
                    step_log = ""
                    on_progress(current)
                elif line.strip():
                    on_progress(Progress("output", line, current.step, current.steps))
            if not STEP.match(text):
                step_log += text
        image_id = image_id or engine.images.get(tag).id
    on_progress(Progress("done", tag, current.steps, current.steps))
    return image_id


def image_exists(engine: Client, reference: str) -> bool:
    return image_id(engine, reference) is not None


def image_id(engine: Client, reference: str) -> str | None:
    """The id (sha256:…, a digest of the image's content) of a tag or id; None when there is none."""
    with engine_errors(f"inspect {reference}"):
        try:
            return str(engine.images.get(reference).id)
        except docker.errors.ImageNotFound:
            return None


def read_file(engine: Client, reference: str, path: str) -> bytes | None:
    """The contents of `path` in the image `reference` (a container is created, never started); None
    when the image has no such file."""

    with engine_errors(f"read {path} from {reference}"):
        container = engine.containers.create(reference, command=["true"])
        try:
            try:
                chunks, _ = container.get_archive(path)
            except docker.errors.NotFound:
                return None
            with tempfile.TemporaryFile() as spool:
                for chunk in chunks:
                    spool.write(chunk)
                spool.seek(0)
                with tarfile.open(fileobj=spool) as archive:
                    member = archive.next()
                    handle = archive.extractfile(member) if member is not None else None
                    return handle.read() if handle is not None else None
        finally:
            container.remove(force=True)


def image_labels(engine: Client, reference: str) -> dict[str, str]:
    """The labels of an image the engine has (an image without any: {})."""
    with engine_errors(f"inspect {reference}"):
        return dict(engine.images.get(reference).labels or {})


def relabel(engine: Client, image_id: str, tag: str, labels: dict[str, str]) -> str:
    """A child of `image_id` with `labels` added (no layer, only its config), tagged `tag`; its id."""

    lines = [f"FROM {image_id}", "LABEL " + " ".join(f"{name}={json.dumps(value)}" for name, value in labels.items())]
    dockerfile = ("\n".join(lines) + "\n").encode()
    spool = io.BytesIO()
    with tarfile.open(fileobj=spool, mode="w") as archive:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        archive.addfile(info, io.BytesIO(dockerfile))
    spool.seek(0)
    return build(engine, spool, tag, {}, {})


def repo_digests(engine: Client, tag: str) -> list[str]:
    with engine_errors(f"inspect {tag}"):
        return list(engine.images.get(tag).attrs.get("RepoDigests") or [])


def tag_image(engine: Client, image: Any, tag: str) -> None:
    """Tag `image` (an image of the SDK, or an id) as `tag`, moving the tag from any other image."""
    reference = split_reference(tag)
    with engine_errors(f"tag {tag}"):
        if isinstance(image, str):
            image = engine.images.get(image)
        image.tag(reference.repository, reference.tag or "latest")


def ensure_image(engine: Client, reference: str) -> None:
    """Pull `reference` unless the engine has it already."""
    if image_exists(engine, reference):
        return
    try:
        with engine_errors(f"pull {reference}"):
            engine.images.pull(reference)
    except EngineError as error:
        raise RegistryError(error.message, registry_hint(error.message)) from error


def push(engine: Client, tag: str, auth: dict[str, str] | None) -> str:
    """Push `tag`; its digest (sha256:…)."""
    reference = split_reference(tag)
    digest = ""
    try:
        with engine_errors(f"push {tag}"):
            for event in engine.api.push(reference.repository, tag=reference.tag or "latest", stream=True, decode=True,
                                         auth_config=auth):
                if "error" in event:
                    raise RegistryError(f"push {tag}: {event['error']}", registry_hint(event["error"]))
                digest = event.get("aux", {}).get("Digest", digest)
    except EngineError as error:
        raise RegistryError(error.message, registry_hint(error.message)) from error
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


# -- containers ------------------------------------------------------------------------


def container_named(engine: Client, name: str) -> Any | None:
    with engine_errors(f"inspect {name}"):
        try:
            return engine.containers.get(name)
        except docker.errors.NotFound:
            return None


def create(engine: Client, image: str, environment: dict[str, str], port: int, gpus: int = 0,
           host_port: int | None = None, **options: Any) -> Any:
    """A container with `port` published on `host_port` (all interfaces), or without one on an
    ephemeral port of 127.0.0.1; `gpus` GPUs through a device request (hardware.count)."""
    device_requests = [docker.types.DeviceRequest(count=gpus, capabilities=[["gpu"]])] if gpus else None
    published: Any = host_port if host_port is not None else ("127.0.0.1", None)
    with engine_errors("create a container"):
        return engine.containers.create(image, environment=environment, ports={f"{port}/tcp": published},
                                        device_requests=device_requests, **options)


def run(engine: Client, image: str, environment: dict[str, str], port: int, gpus: int = 0,
        host_port: int | None = None, **options: Any) -> Any:
    container = create(engine, image, environment, port, gpus, host_port, **options)
    try:
        with engine_errors("start the container"):
            container.start()
    except BaseException:
        remove(container)
        raise
    return container


def run_to_end(engine: Client, image: str, command: list[str], environment: dict[str, str], timeout_s: float,
               **options: Any) -> tuple[int, str]:
    """Run `command` in a container of `image` until it exits (or `timeout_s` passes: an
    EngineError); (its exit status, its log). The container is removed either way."""
    with engine_errors(f"create a container of {image}"):
        container = engine.containers.create(image, command=command, environment=environment, **options)
    try:
        with engine_errors(f"run {' '.join(command[:2])} in {image}"):
            container.start()
            result = container.wait(timeout=timeout_s)
            output = container.logs().decode(errors="replace")
        return int(result.get("StatusCode", -1)), output
    finally:
        remove(container)


def ensure_volume(engine: Client, name: str, labels: dict[str, str]) -> None:
    """A named volume on the engine (made once; creating one that exists is a no-op)."""
    with engine_errors(f"make the volume {name}"):
        engine.volumes.create(name=name, labels=labels)


def standby_network(engine: Client) -> str:
    """An internal network: a container started on it alone loads its model without taking its
    published port, which it gets once connected to the default bridge (`publish`)."""
    with engine_errors(f"prepare the network {STANDBY_NETWORK}"):
        if not engine.networks.list(names=[STANDBY_NETWORK]):
            with contextlib.suppress(docker.errors.APIError):  # made meanwhile by another deploy
                engine.networks.create(STANDBY_NETWORK, driver="bridge", internal=True)
    return STANDBY_NETWORK


def publish(container: Any) -> None:
    """Connect to the default bridge, which binds the container's published ports."""
    try:
        with engine_errors(f"publish the port of {container.name}"):
            container.client.networks.get("bridge").connect(container)
    except EngineError:
        # a failed connect leaves a half-made endpoint behind; clear it so the container stays usable
        with contextlib.suppress(docker.errors.DockerException, requests.exceptions.RequestException):
            container.client.networks.get("bridge").disconnect(container, force=True)
        raise


def unpublish(container: Any) -> None:
    """Move a (stopped) container from the bridge to the standby network: no port when it starts."""
    with engine_errors(f"take {container.name} off its port"):
        networks = container.attrs["NetworkSettings"]["Networks"] or {}
        if STANDBY_NETWORK not in networks:
            container.client.networks.get(standby_network(container.client)).connect(container)
        if "bridge" in networks:
            container.client.networks.get("bridge").disconnect(container, force=True)


def published_port(container: Any) -> str | None:
    """The host port the container is configured to publish (running or not)."""
    bindings = container.attrs["HostConfig"].get("PortBindings") or {}
    for binding in bindings.values():
        for host in binding or []:
            return str(host.get("HostPort") or "") or None
    return None


def leave_standby(container: Any) -> None:
    with contextlib.suppress(docker.errors.DockerException, requests.exceptions.RequestException):
        container.client.networks.get(STANDBY_NETWORK).disconnect(container, force=True)


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


def list_containers(engine: Client, label: str) -> list[Any]:
    with engine_errors("list containers"):
        return list(engine.containers.list(all=True, filters={"label": label}))

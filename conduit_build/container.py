"""`conduit test --image`: the image run as a container for as long as a `with`
block runs, and always removed after it (Ctrl-C too)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import docker_engine
from .config import Project
from .local import wait_until_ready


def exit_reason(container: Any) -> str | None:
    """None while the container runs; else how it ended."""
    try:
        container.reload()
    except Exception:  # removed underneath us
        return "the container is gone"
    state = container.attrs.get("State", {})
    if state.get("Status") in ("exited", "dead"):
        return f"the container exited with status {state.get('ExitCode')}"
    return None


@contextmanager
def running_container(image: str, project: Project, api_key: str | None, ready_timeout_s: float = 120) -> Iterator[str]:
    """Start `image` with the API key passed at run time; yield its base URL once /ready."""
    engine = docker_engine.client()
    port = project.config.server.port
    environment = {project.config.server.api_key_env: api_key} if api_key else {}
    container = docker_engine.run(engine, image, environment, port, gpu=project.config.hardware.gpu)
    try:
        base_url = f"http://127.0.0.1:{docker_engine.host_port(container, port)}"
        wait_until_ready(base_url, ready_timeout_s, lambda: exit_reason(container), lambda: docker_engine.logs(container))
        yield base_url
    finally:
        docker_engine.remove(container)

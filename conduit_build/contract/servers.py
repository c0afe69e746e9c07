"""The server a contract test runs against, for as long as a `with` block runs, and always
stopped after it (Ctrl-C too):

    local_server       `conduit serve` in a child process (--local)
    running_container  a container of the image, the key passed at run time (--image, the default);
                       with image.weights: separate, the project's weights mounted (image/weights_host.py)
    running_at         a server someone else runs (--url): only waited for

Each waits for GET /ready, and raises ContractError with the log's tail when the
server never gets ready. A server that answers /ready with the code `startup_failed`
will never get ready: the wait ends there instead of at the timeout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from conduit_runtime.errors import STARTUP_FAILED

from ..config import Project
from ..errors import ContractError
from ..image import engine

LOG_TAIL_LINES = 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def ready_problem(base_url: str) -> tuple[str, str] | None:
    """None once GET /ready answers 200; else (code, why not), in the server's own words when it has them."""
    try:
        response = httpx.get(base_url + "/ready", timeout=2)
    except httpx.HTTPError as exc:
        return "no_answer", f"no answer ({type(exc).__name__})"
    if response.status_code == 200:
        return None
    try:
        error = response.json()["error"]
        return str(error["code"]), f"{response.status_code}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return "unknown", f"{response.status_code}: {response.text[:200]!r}"


def wait_until_ready(base_url: str, timeout_s: float, exited: Callable[[], str | None],
                     logs: Callable[[], str] | None) -> None:
    """Poll /ready until 200. `exited()` says why the server is gone (None while it runs);
    `logs()` gives its log, if we have it."""
    deadline = time.monotonic() + timeout_s
    problem = "not polled yet"
    while time.monotonic() < deadline:
        answer = ready_problem(base_url)
        if answer is None:
            return
        code, problem = answer
        gone = exited() or (problem if code == STARTUP_FAILED else None)
        if gone is not None:
            raise ContractError(f"the server will not get ready ({gone})" + log_tail(logs))
        time.sleep(0.1)
    raise ContractError(f"the server was not ready within {timeout_s:g} s (last /ready: {problem})" + log_tail(logs))


def log_tail(logs: Callable[[], str] | None) -> str:
    text = tail(logs()) if logs else ""
    return f"; its log ends with:\n{text}" if text.strip() else ""


def stop(process: subprocess.Popen[bytes], grace_s: float = 10) -> None:
    """Ctrl-C (SIGINT) for a graceful shutdown, SIGKILL past the grace period or on a second
    Ctrl-C. Not SIGTERM: no load balancer routes to a test's server, so it need not keep
    admitting for server.drain_delay_s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    except KeyboardInterrupt:
        process.kill()
        process.wait()
        raise


@contextmanager
def local_server(project: Project, api_key: str | None, ready_timeout_s: float = 120) -> Iterator[str]:
    """`conduit serve` for the project on a free port with the key in server.api_key_env (no
    key: the variable is removed); yields the base URL once ready."""
    port = free_port()
    env = {**os.environ}
    env.pop(project.config.server.api_key_env, None)
    if api_key:
        env[project.config.server.api_key_env] = api_key
    command = [sys.executable, "-m", "conduit_build", "serve", "-f", str(project.path), "--port", str(port)]
    # A file, not a pipe: a chatty server never blocks on a pipe nobody reads.
    with tempfile.TemporaryDirectory(prefix="conduit-test-") as folder:
        log_path = Path(folder) / "serve.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=project.root)
        try:
            base_url = f"http://127.0.0.1:{port}"

            def exited() -> str | None:
                code = process.poll()
                return None if code is None else f"exit status {code}"

            wait_until_ready(base_url, ready_timeout_s, exited, lambda: log_path.read_text(errors="replace"))
            yield base_url
        finally:
            stop(process)


@contextmanager
def running_container(image: str, project: Project, api_key: str | None, ready_timeout_s: float = 120) -> Iterator[str]:
    """A container of `image` with the API key passed at run time; yields its base URL once ready.
    An image built with image.weights: separate gets the project's weights as a deploy does
    (image/weights_host.py: the build tool's tree mounted read-only as CONDUIT_WEIGHTS_DIR, and
    CONDUIT_WEIGHTS=<pin>)."""
    from ..image.weights_host import for_container

    client = engine.client()
    config = project.config
    port = config.server.port
    environment = {config.server.api_key_env: api_key} if api_key else {}
    weights = for_container(client, image, project)
    options: dict[str, Any] = {}
    if weights is not None:
        environment.update(weights.environment)
        options["volumes"] = weights.volumes
    container = engine.run(client, image, environment, port, gpus=config.hardware.count if config.hardware.gpu else 0,
                           **options)
    try:
        base_url = f"http://127.0.0.1:{engine.host_port(container, port)}"

        def exited() -> str | None:
            if not engine.reload(container):
                return "the container is gone"
            state = container.attrs.get("State", {})
            if state.get("Status") in ("exited", "dead"):
                return f"the container exited with status {state.get('ExitCode')}"
            return None

        wait_until_ready(base_url, ready_timeout_s, exited, lambda: engine.logs(container))
        yield base_url
    finally:
        engine.remove(container)


@contextmanager
def running_at(url: str, ready_timeout_s: float) -> Iterator[str]:
    base_url = url.rstrip("/").removesuffix("/predict")
    wait_until_ready(base_url, ready_timeout_s, exited=lambda: None, logs=None)
    yield base_url


__all__ = ["free_port", "local_server", "running_at", "running_container", "wait_until_ready"]

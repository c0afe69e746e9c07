"""`conduit test --local`: the project served by `conduit serve` in a child process,
for as long as a `with` block runs, and always stopped after it (Ctrl-C too)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from .config import Project
from .errors import ContractError

LOG_TAIL_LINES = 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def ready_problem(base_url: str) -> str | None:
    """None once GET /ready answers 200; else why not (the server's own words when it has them)."""
    try:
        response = httpx.get(base_url + "/ready", timeout=2)
    except httpx.HTTPError as exc:
        return f"no answer ({type(exc).__name__})"
    if response.status_code == 200:
        return None
    try:
        return f"{response.status_code}: {response.json()['error']['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text[:200]!r}"


def wait_until_ready(base_url: str, timeout_s: float, exited: Callable[[], str | None],
                     logs: Callable[[], str] | None) -> None:
    """Poll /ready until 200. `exited()` says why the server is gone (None while it runs);
    `logs()` gives its log, if we have it. Raises ContractError, with the log's tail, when it
    never gets ready. Shared by the local server, the container and a server at a URL."""
    deadline = time.monotonic() + timeout_s
    problem: str | None = "not polled yet"
    while time.monotonic() < deadline:
        problem = ready_problem(base_url)
        if problem is None:
            return
        gone = exited() or gave_up(problem)
        if gone is not None:
            raise ContractError(f"the server will not get ready ({gone})" + log_tail(logs))
        time.sleep(0.1)
    raise ContractError(f"the server was not ready within {timeout_s:g} s (last /ready: {problem})" + log_tail(logs))


def gave_up(problem: str) -> str | None:
    """Conduit's server loads and warms up once: after "start-up failed" it never gets
    ready, so waiting out the timeout would only delay the report."""
    return problem if "start-up failed" in problem else None


def log_tail(logs: Callable[[], str] | None) -> str:
    text = tail(logs()) if logs else ""
    return f"; its log ends with:\n{text}" if text.strip() else ""


def stop(process: subprocess.Popen[bytes], grace_s: float = 10) -> None:
    """SIGTERM for a graceful shutdown, SIGKILL past the grace period or on a second Ctrl-C."""
    if process.poll() is not None:
        return
    process.terminate()
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
    """Start `conduit serve` for the project on a free port with the key in
    server.api_key_env (no key: the variable is removed), wait for /ready, and
    yield the base URL. The process is stopped on the way out, however it is left."""
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


__all__ = ["local_server", "wait_until_ready"]

"""Shared fixtures: example models made once per session, and `conduit serve`
started as a real process on a real socket."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
API_KEY = "test-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def checkout_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI process: this checkout's code first, whatever the installed
    package points at (another clone, a worktree) and whatever the process's folder."""
    merged = {**os.environ, **(env or {})}
    merged["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), merged.get("PYTHONPATH", "")) if p)
    return merged


def conduit(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "conduit_build", *args],
        cwd=cwd, env=checkout_env(env), capture_output=True, text=True, timeout=timeout, check=False,
    )


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`--dist loadgroup`, as scripts/test runs it): the Docker tests are
    one group, run by one worker in their file order (they share images and the engine, and
    some depend on what the ones before built); every other module is a group of its own, so
    its module-scoped servers start once, on one worker."""
    for item in items:
        group = "docker" if item.get_closest_marker("docker") else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


@contextlib.contextmanager
def across_workers(name: str) -> Iterator[None]:
    """One pytest-xdist worker at a time (an exclusive lock on a file in the shared temp folder)."""
    with (Path(tempfile.gettempdir()) / f"conduit-tests-{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def examples() -> Path:
    """The examples with their models made (once per test run: parallel workers take turns,
    and the first one makes them)."""
    with across_workers("examples"):
        for name, made in (("iris", "model.pkl"), ("digits", "model.pkl"), ("pipeline", "model.pkl")):
            if not (EXAMPLES / name / made).exists():
                subprocess.run([sys.executable, str(EXAMPLES / name / "make_model.py")], check=True, capture_output=True)
    return EXAMPLES


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    log_path: Path
    key: str = API_KEY
    headers: dict[str, str] = field(default_factory=dict)

    def logs(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            # Ctrl-C, as at a terminal: it drains without SIGTERM's server.drain_delay_s.
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_server(config: Path, log_dir: Path, key: str | None = API_KEY, wait_ready: bool = True, timeout: float = 120,
                 extra: tuple[str, ...] = ()) -> Server:
    port = free_port()
    log_path = log_dir / f"serve-{config.parent.name}-{port}.log"
    env = checkout_env()
    env.pop("CONDUIT_API_KEY", None)
    if key is not None:
        env["CONDUIT_API_KEY"] = key
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "conduit_build", "serve", "-f", str(config), "--port", str(port), *extra],
            stdout=log, stderr=subprocess.STDOUT, env=env, text=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path, key or "", {"Authorization": key} if key else {})
    deadline = time.monotonic() + timeout
    path = "/ready" if wait_ready else "/health"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"conduit serve exited {process.returncode}:\n{server.logs()}")
        try:
            if httpx.get(server.url + path, timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"conduit serve never answered {path} within {timeout} s:\n{server.logs()}")


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A redis-server of its own (Debian's) in `folder`, on a free port: its redis:// URL;
    stopped afterwards. (server.workers > 1 needs a shared async store.)"""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: scripts/setup installs Debian's redis-server")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
         "--appendonly", "no", "--protected-mode", "no"],
        stdout=(folder / "redis.log").open("w"), stderr=subprocess.STDOUT)
    try:
        def pings() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
            return False

        wait_for(pings, 20, "redis-server to answer")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def metric(server: Server, name: str) -> float:
    """The value of a metric of /metrics, summed over its labels."""
    text = httpx.get(server.url + "/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def wait_for(condition: Callable[[], bool], timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def in_background(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run `call` in a thread; its result lands in the list."""
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    return thread, out


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """An HTTP/1.1 answer read off a raw socket: status, header fields (lower-case names), body."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        piece = sock.recv(65536)
        assert piece, f"closed before an answer: {answer!r}"
        answer += piece
    top, _, body = answer.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(fields["content-length"]):
        piece = sock.recv(65536)
        assert piece
        body += piece
    return int(lines[0].split()[1]), fields, body


@pytest.fixture(scope="session")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """serve(path_to_conduit_yaml, key=..., wait_ready=...) → a running Server;
    every server started is stopped at the end of the session."""
    started: list[Server] = []
    log_dir = tmp_path_factory.mktemp("serve-logs")

    def start(config: Path, key: str | None = API_KEY, wait_ready: bool = True, timeout: float = 120) -> Server:
        server = start_server(Path(config), log_dir, key, wait_ready, timeout)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# -- the Docker engine and images built once per session ------------------------------------


@pytest.fixture(scope="session")
def engine() -> object:
    """The real engine; scripts/engine (run by scripts/test) starts one when none answers."""
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:
        pytest.fail(f"no Docker engine answers ({exc}); run scripts/engine first")
    return client


@dataclass
class Built:
    config: Path
    tag: str
    context_hash: str


def build(config: Path, *extra: str, env: dict[str, str] | None = None) -> Built:
    """`conduit build --json` as a user runs it; the built tag."""
    import json

    result = conduit("build", "-f", str(config), "--json", *extra, env=env, timeout=1800)
    assert result.returncode == 0, f"build failed:\n{result.stderr[-4000:]}\n{result.stdout[-2000:]}"
    built = json.loads(result.stdout)
    return Built(config, built["tag"], built["context_hash"])


@pytest.fixture(scope="session")
def images(engine: object, examples: Path) -> dict[str, Built]:
    """The three examples built for real, once per session (they share the base and layer cache)."""
    return {name: build(examples / name / "conduit.yaml") for name in ("iris", "pipeline", "digits")}

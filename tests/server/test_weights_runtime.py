"""Issue 21, the runtime: an image built with `image.weights: separate` fetches its weights
before any model loads. The server is started as the image starts it (the rendered context's
conduit.json, with `weights` added and the weights path a link through the active link), over
real sockets, against the real registry at 127.0.0.1:5000 (tests/weights_artifact.py pushes
the artifacts). Each test has its own active link (CONDUIT_WEIGHTS_ACTIVE) and cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, checkout_env, conduit, free_port, metric, wait_for
from weights_artifact import make_artifact, push

from conduit_runtime.weights.reference import parse_reference
from conduit_runtime.weights.startup import cached

MODEL = '''from hashlib import sha256
from pathlib import Path


class Model:
    def load(self, project_dir):
        self.digest = sha256((Path(project_dir) / "weights.bin").read_bytes()).hexdigest()

    def predict(self, x):
        return {"weights": self.digest, "x": x}
'''
CONFIG = """name: weighty
python: "3.11"
hardware: cpu
models:
  - type: python
    file: model.py:Model
tests:
  - name: one
    json: [1]
"""
WEIGHTS = os.urandom(3 * 1024 * 1024 + 17)
SERVE = ("import sys; from conduit_runtime.process.server import serve; from conduit_runtime.spec import ServerSpec; "
         "serve(ServerSpec.from_file(sys.argv[1]), host='127.0.0.1', port=int(sys.argv[2]))")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build context of a python model that reads weights.bin at load."""
    root = tmp_path_factory.mktemp("weighty")
    (root / "project").mkdir()
    (root / "project" / "conduit.yaml").write_text(CONFIG)
    (root / "project" / "model.py").write_text(MODEL)
    (root / "project" / "weights.bin").write_bytes(b"bundled")
    done = conduit("render", "-o", str(root / "context"), cwd=root / "project")
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "context"


@pytest.fixture(scope="module")
def pin() -> str:
    try:
        return push(make_artifact({"weights.bin": WEIGHTS}))
    except httpx.HTTPError as exc:
        pytest.fail(f"the registry at 127.0.0.1:5000 does not answer ({exc}): scripts/engine starts it")


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.stop()


def app_of(rendered: Path, folder: Path, workers: int = 1) -> Path:
    """/app as the image would hold it: the code, conduit.json with `weights`, and weights.bin a
    link through the active link."""
    app = folder / "app"
    shutil.copytree(rendered / "code", app)
    spec = json.loads((rendered / "conduit.json").read_text())
    spec["weights"] = {"mode": "separate", "paths": ["weights.bin"]}
    spec["server"]["workers"] = workers
    (app / "conduit.json").write_text(json.dumps(spec))
    (app / "weights.bin").unlink()
    (app / "weights.bin").symlink_to(folder / "active" / "models" / "weights.bin")
    return app


def run(rendered: Path, folder: Path, started: list[Server], env: dict[str, str],
        workers: int = 1) -> tuple[Server, httpx.Response]:
    """The server as the image runs it; once /ready is 200 or startup_failed: it and that answer."""
    app = app_of(rendered, folder, workers)
    port = free_port()
    log_path = folder / "server.log"
    environ = checkout_env({"CONDUIT_WEIGHTS_ACTIVE": str(folder / "active"),
                            "CONDUIT_WEIGHTS_CACHE": str(folder / "cache"), **env})
    for name in ("CONDUIT_WEIGHTS", "CONDUIT_WEIGHTS_DIR", "CONDUIT_API_KEY"):
        if name not in env:
            environ.pop(name, None)
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-c", SERVE, str(app / "conduit.json"), str(port)], cwd=app,
                                   env=environ, stdout=log, stderr=subprocess.STDOUT, text=True)
    server = Server(f"http://127.0.0.1:{port}", process, log_path, "", {})
    started.append(server)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, server.logs()
        try:
            answer = httpx.get(server.url + "/ready", timeout=2)
            if answer.status_code == 200 or answer.json()["error"]["code"] == "startup_failed":
                return server, answer
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"neither ready nor startup_failed in 60 s:\n{server.logs()}")


def events(server: Server, event: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


def failed_once(server: Server, answer: httpx.Response) -> dict[str, Any]:
    """/ready says startup_failed, and the log one line why, no traceback: that line."""
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "startup_failed"
    lines = events(server, "startup_failed")
    assert len(lines) == 1, server.logs()
    assert "Traceback" not in server.logs() and not events(server, "load_failed"), server.logs()
    assert not events(server, "weights_fetched")
    return lines[0]


def predicts(server: Server) -> None:
    answer = httpx.post(server.url + "/predict", json=[1], timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == [{"weights": hashlib.sha256(WEIGHTS).hexdigest(), "x": [1]}]


def test_pulled_from_the_registry_verified_and_served(rendered: Path, pin: str, tmp_path: Path,
                                                     started: list[Server]) -> None:
    server, answer = run(rendered, tmp_path, started, {"CONDUIT_WEIGHTS": pin})
    assert answer.status_code == 200, server.logs()
    predicts(server)
    [fetched] = events(server, "weights_fetched")
    assert fetched["source"] == "registry" and fetched["artifact"] == pin and fetched["bytes"] == len(WEIGHTS)
    entry = tmp_path / "cache" / f"sha256-{pin.rpartition(':')[2]}"
    assert (entry / "models" / "weights.bin").read_bytes() == WEIGHTS
    assert os.readlink(tmp_path / "active") == str(entry)
    assert not list((tmp_path / "cache").glob(".partial-*"))
    assert metric(server, "conduit_weights_bytes") == len(WEIGHTS)
    assert 0 < metric(server, "conduit_weights_fetch_seconds") == fetched["seconds"]


def test_workers_pull_once_and_share_the_tree(rendered: Path, pin: str, tmp_path: Path,
                                              started: list[Server]) -> None:
    """server.workers: 2 on a cold cache: the workers take turns at the cache's lock, one pulls,
    the other finds it there; the gauges come through the shared metric files."""
    server, answer = run(rendered, tmp_path, started, {"CONDUIT_WEIGHTS": pin}, workers=2)
    assert answer.status_code == 200, server.logs()
    wait_for(lambda: len(events(server, "ready")) == 2, 60, "both workers ready")
    assert sorted(line["source"] for line in events(server, "weights_fetched")) == ["cache", "registry"]
    predicts(server)
    assert metric(server, "conduit_weights_bytes") == len(WEIGHTS)
    assert metric(server, "conduit_weights_fetch_seconds") > 0


def test_a_warm_cache_needs_no_registry(rendered: Path, pin: str, tmp_path: Path, started: list[Server]) -> None:
    cached(parse_reference(pin), tmp_path / "cache")
    unreachable = pin.replace("127.0.0.1:5000", f"127.0.0.1:{free_port()}")  # nothing listens there
    server, answer = run(rendered, tmp_path, started, {"CONDUIT_WEIGHTS": unreachable})
    assert answer.status_code == 200, server.logs()
    predicts(server)
    assert events(server, "weights_fetched")[0]["source"] == "cache"


def test_a_tampered_cached_file_fails_the_start(rendered: Path, pin: str, tmp_path: Path,
                                               started: list[Server]) -> None:
    cached(parse_reference(pin), tmp_path / "cache")
    [weights] = (tmp_path / "cache").glob("sha256-*/models/weights.bin")
    with weights.open("r+b") as file:  # the same size, one byte changed
        file.seek(1000)
        byte = file.read(1)
        file.seek(1000)
        file.write(bytes([byte[0] ^ 1]))
    server, answer = run(rendered, tmp_path, started, {"CONDUIT_WEIGHTS": pin})
    line = failed_once(server, answer)
    assert line["artifact"] == pin and line["file"] == "weights.bin" and "sha256" in line["error"], line


@pytest.mark.parametrize("how", ["unknown digest", "not a digest"])
def test_a_wrong_pin_fails_the_start(rendered: Path, pin: str, tmp_path: Path, started: list[Server], how: str) -> None:
    wrong = pin[:-64] + "0" * 64 if how == "unknown digest" else pin.replace("@sha256:", ":")
    server, answer = run(rendered, tmp_path, started, {"CONDUIT_WEIGHTS": wrong})
    line = failed_once(server, answer)
    assert line["artifact"] == wrong, line
    assert ("404" if how == "unknown digest" else "@sha256:<64 hex digits>") in line["error"], line


def test_neither_variable_fails_the_start(rendered: Path, tmp_path: Path, started: list[Server]) -> None:
    server, answer = run(rendered, tmp_path, started, {})
    line = failed_once(server, answer)
    assert "CONDUIT_WEIGHTS" in line["error"] and "CONDUIT_WEIGHTS_DIR" in line["error"], line


def test_a_path_missing_from_the_artifact_fails_the_start(rendered: Path, tmp_path: Path,
                                                          started: list[Server]) -> None:
    other = push(make_artifact({"other.bin": b"not the weights"}))
    server, answer = run(rendered, tmp_path, started, {"CONDUIT_WEIGHTS": other})
    line = failed_once(server, answer)
    assert line["file"] == "weights.bin" and line["artifact"] == other, line


def test_a_mounted_folder_is_used_as_is(rendered: Path, pin: str, tmp_path: Path, started: list[Server]) -> None:
    mounted = tmp_path / "mounted"
    fetched = subprocess.run([sys.executable, "-m", "conduit_runtime.weights", "fetch", "--into", str(mounted)],
                             env=checkout_env({"CONDUIT_WEIGHTS": pin}), capture_output=True, text=True, timeout=60)
    assert fetched.returncode == 0, fetched.stderr
    before = {path: path.stat().st_mtime_ns for path in mounted.rglob("*")}
    for path in [mounted, *before]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        # The folder wins over CONDUIT_WEIGHTS (here unreachable: it is not read).
        server, answer = run(rendered, tmp_path, started, {"CONDUIT_WEIGHTS_DIR": str(mounted),
                                                           "CONDUIT_WEIGHTS": pin.replace(":5000", ":1")})
        assert answer.status_code == 200, server.logs()
        predicts(server)
        [line] = events(server, "weights_fetched")
        assert line["source"] == "dir" and line["artifact"] == str(mounted) and line["bytes"] == len(WEIGHTS)
        assert os.readlink(tmp_path / "active") == str(mounted)
        assert {path: path.stat().st_mtime_ns for path in mounted.rglob("*")} == before
        assert not (tmp_path / "cache").exists()
    finally:
        for path in [mounted, *before]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_the_fetch_command_writes_a_verified_tree(pin: str, tmp_path: Path) -> None:
    into = tmp_path / "emptydir"
    into.mkdir()
    done = subprocess.run([sys.executable, "-m", "conduit_runtime.weights", "fetch", "--into", str(into)],
                          env=checkout_env({"CONDUIT_WEIGHTS": pin}), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["event"] == "weights_fetched"
    assert (into / "models" / "weights.bin").read_bytes() == WEIGHTS
    index = json.loads((into / "conduit-weights.json").read_text())
    assert index == {"files": {"weights.bin": {"sha256": hashlib.sha256(WEIGHTS).hexdigest(), "size": len(WEIGHTS)}}}
    # Again into the same folder (an init container restarted): fine. With a wrong pin: one JSON line, exit 1.
    again = subprocess.run([sys.executable, "-m", "conduit_runtime.weights", "fetch", "--into", str(into)],
                           env=checkout_env({"CONDUIT_WEIGHTS": pin}), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    wrong = subprocess.run([sys.executable, "-m", "conduit_runtime.weights", "fetch", "--into", str(tmp_path / "x")],
                           env=checkout_env({"CONDUIT_WEIGHTS": pin[:-64] + "1" * 64}), capture_output=True, text=True,
                           timeout=60)
    assert wrong.returncode == 1 and wrong.stdout == ""
    [line] = wrong.stderr.splitlines()
    assert json.loads(line)["event"] == "weights_fetch_failed" and "404" in json.loads(line)["error"]


@pytest.fixture
def stalled() -> Iterator[int]:
    """A 'registry' that accepts connections and never answers: its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()
    for connection in held:
        connection.close()


def test_a_registry_that_never_answers_ends_in_startup_failed(rendered: Path, pin: str, tmp_path: Path,
                                                              started: list[Server], stalled: int) -> None:
    begun = time.monotonic()
    silent = pin.replace("127.0.0.1:5000", f"127.0.0.1:{stalled}")
    server, answer = run(rendered, tmp_path, started, {"CONDUIT_WEIGHTS": silent, "CONDUIT_REGISTRY_TIMEOUT_S": "2"})
    assert time.monotonic() - begun < 30
    line = failed_once(server, answer)
    assert "did not answer" in line["error"] and line["artifact"] == silent, line

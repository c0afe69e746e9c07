"""conduit deploy --target docker against the real engine and registry:
health-gated rollout, a broken version that never replaces the good one, rollback."""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import build, conduit, free_port

pytestmark = pytest.mark.docker

KEY = "deploy-key"
VERSIONS = {
    # the pre hook of each version; v2 also names the species, so callers can tell them apart
    "v1": "def pre(data):\n    return data\n\n\ndef post(out):\n    return [int(x) for x in out]\n",
    "v2": "def pre(data):\n    return data\n\n\ndef post(out):\n    return [['setosa', 'versicolor', 'virginica'][int(x)] for x in out]\n",
    "broken": "def pre(data):\n    raise RuntimeError('this version is broken')\n\n\ndef post(out):\n    return out\n",
}


@pytest.fixture(scope="module")
def project(engine: Any, examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A copy of iris under a unique name, with a hook file each version rewrites."""
    folder = tmp_path_factory.mktemp("deploy") / "iris"
    shutil.copytree(examples / "iris", folder, ignore=shutil.ignore_patterns("__pycache__"))
    name = f"deploy-{uuid.uuid4().hex[:8]}"
    port = free_port()
    config = folder / "conduit.yaml"
    text = config.read_text().replace("name: iris", f"name: {name}")
    text = text.replace("repository: localhost:5000/iris", f"repository: localhost:5000/{name}")
    text = text.replace("    file: model.pkl            # made by make_model.py",
                        "    file: model.pkl\n    hooks: {pre: hooks.py:pre, post: hooks.py:post}")
    text = text.replace("docker: {port: 8000, restart: unless-stopped}",
                        f"docker: {{port: {port}, restart: unless-stopped, ready_timeout_s: 60}}")
    text = text.replace("    expect: {result: [0, 2]}\n", "").replace("    expect: {result: [0]}\n", "")
    config.write_text(text)
    yield {"config": config, "name": name, "url": f"http://127.0.0.1:{port}"}
    for container in engine.containers.list(all=True, filters={"label": f"conduit.deploy={name}"}):
        container.remove(force=True)


def release(project: dict[str, Any], version: str | None) -> str:
    """Build and push one version (a hooks.py of VERSIONS); its repository@sha256 reference."""
    if version is not None:
        (project["config"].parent / "hooks.py").write_text(VERSIONS[version])
    build(project["config"])
    pushed = conduit("push", "-f", str(project["config"]))
    assert pushed.returncode == 0, pushed.stderr
    return pushed.stdout.strip()


def deploy(project: dict[str, Any], *extra: str) -> Any:
    return conduit("deploy", "-f", str(project["config"]), "--target", "docker", *extra,
                   env={"CONDUIT_API_KEY": KEY}, timeout=600)


def answer(project: dict[str, Any]) -> Any:
    response = httpx.post(project["url"] + "/predict", json=[[5.1, 3.5, 1.4, 0.2]],
                          headers={"Authorization": KEY}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def live_image(project: dict[str, Any]) -> str:
    result = conduit("status", "-f", str(project["config"]), "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    live = rows[f"conduit-{project['name']}"]
    assert live["ready"] and live["state"] == "running"
    return str(live["image"])


def test_rollout_broken_version_and_rollback(project: dict[str, Any]) -> None:
    v1 = release(project, "v1")
    first = deploy(project)
    assert first.returncode == 0, first.stderr
    assert answer(project) == [0]
    assert live_image(project) == v1
    assert re.fullmatch(rf"localhost:5000/{project['name']}@sha256:[0-9a-f]{{64}}", v1)

    broken = release(project, "broken")
    failed = deploy(project)
    assert failed.returncode == 1
    assert "never reported /ready" in failed.stderr and "this version is broken" in failed.stderr
    assert "Traceback (most recent call last)" not in failed.stderr.split("its log ends with")[0]
    assert answer(project) == [0]  # the old version kept serving throughout
    assert live_image(project) == v1 != broken

    v2 = release(project, "v2")
    second = deploy(project)
    assert second.returncode == 0, second.stderr
    assert answer(project) == ["setosa"]
    assert live_image(project) == v2

    back = deploy(project, "--rollback")
    assert back.returncode == 0, back.stderr
    assert answer(project) == [0]
    assert live_image(project) == v1

    status = conduit("status", "-f", str(project["config"]))
    assert f"conduit-{project['name']}" in status.stdout and "running" in status.stdout


def test_deploy_needs_a_key_from_the_operator(project: dict[str, Any]) -> None:
    result = conduit("deploy", "-f", str(project["config"]), "--target", "docker", env={"CONDUIT_API_KEY": ""})
    assert result.returncode == 2
    assert "CONDUIT_API_KEY" in result.stderr and "--key-file" in result.stderr


def test_the_key_never_enters_image_or_labels(engine: Any, project: dict[str, Any]) -> None:
    live = engine.containers.get(f"conduit-{project['name']}")
    image = engine.images.get(live.image.id)
    assert KEY not in json.dumps(image.attrs) and KEY not in json.dumps(live.labels)


# -- the swap: about a second whatever the load time; never nothing running ----------------------

LOAD_S = 10
SLOW_MODEL = """import time


class Model:
    def load(self, project_dir):
        time.sleep({load_s})

    def predict(self, data):
        return [{version!r} for _ in data]
"""


@pytest.fixture(scope="module")
def slow(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A python model whose load takes LOAD_S seconds, under a unique name and port."""
    folder = tmp_path_factory.mktemp("slow")
    name = f"slow-{uuid.uuid4().hex[:8]}"
    port = free_port()
    (folder / "conduit.yaml").write_text(
        f"name: {name}\nmodels: [{{type: python, file: 'model.py:Model'}}]\n"
        f"image: {{repository: localhost:5000/{name}}}\n"
        f"deploy: {{docker: {{port: {port}, ready_timeout_s: 120}}}}\n"
        "tests: [{name: one, json: [1]}]\n")
    yield {"config": folder / "conduit.yaml", "name": name, "url": f"http://127.0.0.1:{port}", "port": port}
    for container in engine.containers.list(all=True, filters={"label": f"conduit.deploy={name}"}):
        container.remove(force=True)


def release_slow(slow: dict[str, Any], version: str) -> str:
    (slow["config"].parent / "model.py").write_text(SLOW_MODEL.format(load_s=LOAD_S, version=version))
    return release({"config": slow["config"]}, None)


def poll(url: str, samples: list[tuple[float, Any]], stop: threading.Event) -> None:
    """Every 50 ms: (time, the result, or None when nothing answered)."""
    while not stop.is_set():
        try:
            response = httpx.post(url + "/predict", json=[1], headers={"Authorization": KEY}, timeout=1)
            result = response.json()["result"] if response.status_code == 200 else None
        except httpx.HTTPError:
            result = None
        samples.append((time.monotonic(), result))
        stop.wait(0.05)


def test_the_swap_costs_about_a_second_not_the_load_time(slow: dict[str, Any]) -> None:
    release_slow(slow, "v1")
    assert deploy(slow).returncode == 0
    release_slow(slow, "v2")
    samples: list[tuple[float, Any]] = []
    stop = threading.Event()
    poller = threading.Thread(target=poll, args=(slow["url"], samples, stop))
    poller.start()
    try:
        result = deploy(slow)
    finally:
        stop.set()
        poller.join()
    assert result.returncode == 0, result.stderr
    last_old = max(t for t, answer in samples if answer == ["v1"])
    first_new = min(t for t, answer in samples if answer == ["v2"])
    # the old version answered every poll until the swap, the new one every poll after it
    assert all(answer == ["v1"] for t, answer in samples if t <= last_old)
    assert all(answer == ["v2"] for t, answer in samples if t >= first_new)
    unavailable_s = first_new - last_old
    print(f"unavailable for {unavailable_s:.2f} s during the swap (polling every 50 ms; load takes {LOAD_S} s)")
    assert 0 < unavailable_s < LOAD_S  # the swap never waits for the model to load again


def test_a_new_version_that_cannot_take_its_port_leaves_the_old_one_serving(slow: dict[str, Any]) -> None:
    if httpx.get(slow["url"] + "/ready", timeout=2).status_code != 200:
        release_slow(slow, "v2")
        assert deploy(slow).returncode == 0
    config = slow["config"]
    text = config.read_text()
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        config.write_text(text.replace(f"port: {slow['port']},", f"port: {taken.getsockname()[1]},"))
        try:
            result = deploy(slow)
        finally:
            config.write_text(text)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "could not take port" in lines[-1] and "the old version keeps serving" in lines[-1], result.stderr
    assert "Traceback" not in result.stderr
    response = httpx.post(slow["url"] + "/predict", json=[1], headers={"Authorization": KEY}, timeout=10)
    assert response.status_code == 200 and response.json()["result"] == ["v2"]

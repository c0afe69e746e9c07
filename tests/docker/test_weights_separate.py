"""Issue 21's acceptance, with the real engine and the registry on 127.0.0.1:5000: a `python`
model project with 200 MB of random weights built with image.weights: separate.

    the server image is the size of the same project's with 1 KB of weights (within 5 MB)
    a hook edit, built and pushed, stores under 5 MB of new blobs, and the same weights digest
    a retrain (new random bytes) is the same server image ID and a new weights digest
    `conduit test` passes against the image (the build tool's tree mounted read-only)
    `conduit deploy --target docker`: mounted, shared by two versions, a retrain swapped in
    a container pulling CONDUIT_WEIGHTS into a cache folder gets ready; again, with that warm
    cache and the registry unreachable; with one byte of the cached weights changed it is
    startup_failed with one JSON line and no traceback
    and, bundled: the same project's hook edit stores only the code layer (models[i].weights are
    the model layer, before the code)

Each image is built once (module-scoped); the numbers measured on the way are printed (-s)
and gathered in bench/weights.py for the README.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import conduit, free_port

pytestmark = pytest.mark.docker

REGISTRY = "127.0.0.1:5000"
BIG = 200 * 1024 * 1024
KEY = "weights-key"
MODEL = '''\
import os
from pathlib import Path


class Model:
    def load(self, project_dir):
        with (Path(project_dir) / "weights.bin").open("rb") as weights:
            self.first = sum(weights.read(16))
            self.size = os.fstat(weights.fileno()).st_size

    def predict(self, data):
        return [[self.size, self.first] for _ in data]
'''
HOOKS = "def pre(data):\n    return data\n"
EDITED = "def pre(data):\n    # an edit: the model is the same\n    return list(data)\n"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for start in range(0, size, 1 << 20):
            out.write(os.urandom(min(1 << 20, size - start)))


def make_project(folder: Path, weights_size: int, yaml: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(MODEL)
    (folder / "hooks.py").write_text(HOOKS)
    write_random(folder / "weights.bin", weights_size)
    (folder / "conduit.yaml").write_text(yaml)
    return folder / "conduit.yaml"


def config_text(name: str, port: int, deploy_port: int, mode: str = "separate") -> str:
    return (
        f"name: {name}\n"
        "models:\n"
        "  - type: python\n"
        "    file: model.py:Model\n"
        "    weights: [weights.bin]\n"
        "    hooks: {pre: hooks.py:pre}\n"
        f"server: {{port: {port}}}\n"
        "image:\n"
        f"  repository: {REGISTRY}/{name}\n"
        f"  weights: {mode}\n"
        f"deploy:\n  docker: {{port: {deploy_port}, ready_timeout_s: 120}}\n"
        "tests:\n"
        "  - name: one\n"
        "    json: [[1]]\n"
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conduit-cache")


def cli(cache: Path, *args: str, config: Path) -> dict[str, Any]:
    result = conduit(*args, "-f", str(config), "--json", env={"CONDUIT_CACHE_DIR": str(cache), "CONDUIT_API_KEY": KEY},
                     timeout=1800)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stderr[-4000:]}\n{result.stdout[-2000:]}"
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def timed(cache: Path, *args: str, config: Path) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    payload = cli(cache, *args, config=config)
    return payload, time.monotonic() - started


@pytest.fixture(scope="module")
def project(engine: Any, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The 200 MB project, built once; its state moves on test by test (pushed, edited, retrained)."""
    name = f"weights-sep-{uuid.uuid4().hex[:8]}"
    port, deploy_port = free_port(), free_port()
    config = make_project(tmp_path_factory.mktemp("big") / "p", BIG, config_text(name, port, deploy_port))
    built, seconds = timed(cache, "build", config=config)
    print(f"\n[weights] separate, cold build: {seconds:.1f} s")
    state: dict[str, Any] = {"name": name, "config": config, "built": built, "port": port, "deploy_port": deploy_port}
    yield state
    for container in engine.containers.list(all=True, filters={"label": f"conduit.deploy={name}"}):
        container.remove(force=True)


def manifest(repository: str, reference: str, accept: str) -> dict[str, Any]:
    response = httpx.get(f"http://{REGISTRY}/v2/{repository}/manifests/{reference}", headers={"Accept": accept},
                         timeout=30)
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()
    return payload


def blobs(repository: str, digest: str, accept: str) -> dict[str, int]:
    """digest → size of every blob a manifest names (its config and layers)."""
    found = manifest(repository, digest, accept)
    return {blob["digest"]: int(blob["size"]) for blob in (found["config"], *found["layers"])}


def pushed_blobs(name: str, pushed: dict[str, Any]) -> dict[str, int]:
    weights = pushed["weights"]
    return {**blobs(name, pushed["digest"], DOCKER_MANIFEST),
            **blobs(f"{name}-weights", weights["digest"], OCI_MANIFEST)}


def new_bytes(before: dict[str, int], after: dict[str, int]) -> int:
    return sum(size for digest, size in after.items() if digest not in before)


def test_the_server_image_does_not_grow_with_the_weights(engine: Any, cache: Path, project: dict[str, Any],
                                                         tmp_path: Path) -> None:
    built = project["built"]
    assert built["weights"]["bytes"] > BIG
    # the same project, 1 KB of weights
    small = make_project(tmp_path / "small", 1024, project["config"].read_text())
    small_built = cli(cache, "build", config=small)
    big_size = engine.images.get(built["tag"]).attrs["Size"]
    small_size = engine.images.get(small_built["tag"]).attrs["Size"]
    print(f"\n[weights] server image: {big_size / 1e6:.1f} MB with 200 MB of weights, {small_size / 1e6:.1f} MB with 1 KB")
    assert abs(big_size - small_size) < 5 * 1024 * 1024
    assert small_built["weights"]["digest"] != built["weights"]["digest"]


def test_a_hook_edit_pushes_under_5_mb_and_keeps_the_weights(cache: Path, project: dict[str, Any]) -> None:
    config, name = project["config"], project["name"]
    first, seconds = timed(cache, "push", config=config)
    print(f"\n[weights] separate, first push: {seconds:.1f} s, weights {first['weights']['bytes_sent']} bytes sent")
    assert first["weights"]["digest"] == project["built"]["weights"]["digest"]

    (config.parent / "hooks.py").write_text(EDITED)
    started = time.monotonic()
    edited = cli(cache, "build", config=config)
    built_s = time.monotonic() - started
    pushed, push_s = timed(cache, "push", config=config)
    stored = new_bytes(pushed_blobs(name, first), pushed_blobs(name, pushed))
    print(f"[weights] separate, hook edit: build {built_s:.1f} s + push {push_s:.1f} s, "
          f"{stored} bytes of new blobs, weights {pushed['weights']['bytes_sent']} bytes sent")
    assert edited["image_id"] != project["built"]["image_id"]
    assert edited["weights"]["digest"] == project["built"]["weights"]["digest"]
    assert pushed["weights"]["digest"] == first["weights"]["digest"]
    assert pushed["weights"]["bytes_sent"] == 0 and pushed["weights"]["layers_sent"] == 0
    assert 0 < stored < 5 * 1024 * 1024
    project.update(built=edited, pushed=pushed)


def test_a_retrain_is_the_same_server_image_and_new_weights(cache: Path, project: dict[str, Any]) -> None:
    config, before = project["config"], project["built"]
    write_random(config.parent / "weights.bin", BIG)
    started = time.monotonic()
    retrained = cli(cache, "build", config=config)
    built_s = time.monotonic() - started
    assert retrained["image_id"] == before["image_id"] and retrained["cached"]
    assert retrained["weights"]["digest"] != before["weights"]["digest"]
    pushed, push_s = timed(cache, "push", config=config)
    stored = new_bytes(pushed_blobs(project["name"], project["pushed"]), pushed_blobs(project["name"], pushed))
    print(f"\n[weights] separate, retrain: build {built_s:.1f} s + push {push_s:.1f} s, {stored} bytes of new blobs, "
          f"weights {pushed['weights']['bytes_sent']} bytes sent")
    assert pushed["digest"] == project["pushed"]["digest"]  # the server image: nothing new
    assert pushed["weights"]["digest"] == retrained["weights"]["digest"]
    assert BIG < stored < BIG + 1024 * 1024
    project.update(built=retrained, previous=project["pushed"], pushed=pushed)


def test_conduit_test_mounts_the_weights(cache: Path, project: dict[str, Any]) -> None:
    result = conduit("test", "-f", str(project["config"]), "--repeat", "0",
                     env={"CONDUIT_CACHE_DIR": str(cache)}, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tree = cache / "weights" / "trees" / f"sha256-{project['built']['weights']['digest'][7:]}"
    assert (tree / "models" / "weights.bin").stat().st_size == BIG


def test_deploy_mounts_one_copy_and_swaps_in_a_retrain(engine: Any, cache: Path, project: dict[str, Any]) -> None:
    config, name = project["config"], project["name"]
    port = project["deploy_port"]
    previous = project["previous"]["weights"]["pinned"]

    # the weights before the retrain, then the current ones: the same image, a new candidate
    first = cli(cache, "deploy", "--target", "docker", "--weights", previous, config=config)
    assert first["weights"] == previous
    second, seconds = timed(cache, "deploy", "--target", "docker", config=config)
    print(f"\n[weights] deploy of a retrain (same image, weights mounted): {seconds:.1f} s")
    assert second["weights"] == project["pushed"]["weights"]["pinned"]
    assert second["image"] == first["image"] == project["pushed"]["reference"]
    answer = httpx.post(f"http://127.0.0.1:{port}/predict", json=[[1]], headers={"Authorization": KEY}, timeout=30)
    assert answer.status_code == 200 and answer.json()["result"][0][0] == BIG

    live = engine.containers.get(f"conduit-{name}")
    [mount] = live.attrs["Mounts"]
    digest = project["pushed"]["weights"]["digest"]
    assert mount["Source"] == str(cache / "weights" / "trees" / f"sha256-{digest[7:]}")
    assert mount["RW"] is False and mount["Destination"] == f"/conduit-weights/sha256-{digest[7:]}"
    env = dict(item.split("=", 1) for item in live.attrs["Config"]["Env"])
    assert env["CONDUIT_WEIGHTS"] == project["pushed"]["weights"]["pinned"]
    assert env["CONDUIT_WEIGHTS_DIR"] == mount["Destination"]

    # a second container of the same weights (conduit test, beside the live one) mounts the same
    # folder: one copy per host, no new tree
    trees = cache / "weights" / "trees"
    before = sorted(trees.iterdir())
    assert f"sha256-{previous.split('@sha256:')[1]}" in [p.name for p in before]
    result = conduit("test", "-f", str(config), "--repeat", "0", env={"CONDUIT_CACHE_DIR": str(cache)}, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert sorted(trees.iterdir()) == before

    back = conduit("deploy", "-f", str(config), "--target", "docker", "--rollback", "--json",
                   env={"CONDUIT_CACHE_DIR": str(cache)}, timeout=600)
    assert back.returncode == 0, back.stderr[-3000:]
    assert json.loads(back.stdout)["weights"] == previous


def wait_ready(container: Any, url: str, timeout: float = 300) -> tuple[int, dict[str, Any] | None]:
    """(status, error) of /ready once it is 200 or startup_failed, or the container ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.status in ("exited", "dead"):
            return -1, None
        try:
            response = httpx.get(url + "/ready", timeout=2)
        except httpx.HTTPError:
            time.sleep(0.1)
            continue
        if response.status_code == 200:
            return 200, None
        error = response.json().get("error", {})
        if error.get("code") == "startup_failed":
            return response.status_code, error
        time.sleep(0.1)
    raise AssertionError(f"not ready within {timeout} s:\n{container.logs().decode()[-3000:]}")


def start(engine: Any, image: str, pin: str, folder: Path) -> Any:
    return engine.containers.run(
        image, detach=True, network_mode="host", volumes={str(folder): {"bind": "/cache", "mode": "rw"}},
        environment={"CONDUIT_WEIGHTS": pin, "CONDUIT_WEIGHTS_CACHE": "/cache", "CONDUIT_API_KEY": KEY})


def test_a_pulled_cache_then_the_warm_cache_offline_then_a_tampered_one(engine: Any, project: dict[str, Any],
                                                                      tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{project['port']}"
    image, pin = project["pushed"]["reference"], project["pushed"]["weights"]["pinned"]
    folder = tmp_path / "cache"
    folder.mkdir()
    folder.chmod(0o777)  # the server runs as 10001

    started = time.monotonic()
    cold = start(engine, image, pin, folder)
    try:
        status, error = wait_ready(cold, url)
        cold_s = time.monotonic() - started
        assert status == 200, (error, cold.logs().decode()[-3000:])
        answer = httpx.post(url + "/predict", json=[[1]], headers={"Authorization": KEY}, timeout=30)
        assert answer.status_code == 200 and answer.json()["result"][0][0] == BIG
        fetched = [json.loads(line) for line in cold.logs().decode().splitlines() if '"weights_fetched"' in line]
        assert [(line["source"], line["artifact"]) for line in fetched] == [("registry", pin)]
        assert fetched[0]["bytes"] == BIG
    finally:
        cold.remove(force=True)

    # the same digest from a registry that is not there: the cache is keyed by the digest alone
    digest = pin.split("@")[1]
    offline = f"127.0.0.1:{free_port()}/{project['name']}-weights@{digest}"
    started = time.monotonic()
    warm = start(engine, image, offline, folder)
    try:
        status, error = wait_ready(warm, url)
        warm_s = time.monotonic() - started
        assert status == 200, (error, warm.logs().decode()[-3000:])
        assert '"source": "cache"' in warm.logs().decode() or '"source":"cache"' in warm.logs().decode()
    finally:
        warm.remove(force=True)
    print(f"\n[weights] start-to-ready (container start → /ready 200): cold cache (pull of 200 MB) {cold_s:.1f} s, "
          f"warm cache (registry unreachable) {warm_s:.1f} s")

    weights = folder / f"sha256-{digest[7:]}" / "models" / "weights.bin"
    with weights.open("r+b") as handle:
        handle.seek(BIG // 2)
        byte = handle.read(1)
        handle.seek(BIG // 2)
        handle.write(bytes([byte[0] ^ 1]))
    tampered = start(engine, image, offline, folder)
    try:
        status, error = wait_ready(tampered, url)
        logs = tampered.logs().decode()
    finally:
        tampered.remove(force=True)
    assert error is not None and error["code"] == "startup_failed", logs[-3000:]
    failed = [line for line in logs.splitlines() if "startup_failed" in line]
    assert len(failed) == 1, logs[-3000:]
    record = json.loads(failed[0])
    assert record["event"] == "startup_failed" and "weights.bin" in json.dumps(record)
    assert "Traceback" not in logs


def test_a_remote_engine_fetches_once_into_the_hosts_volume(engine: Any, cache: Path, project: dict[str, Any],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """On a remote engine (here the local one, taken for remote) the weights are fetched by a
    container of the server image into the host's volume, once, and the deploy's candidate (on
    its internal network: no registry) mounts that volume read-only."""
    from conduit_build.config import load
    from conduit_build.deploy import docker as docker_deploy
    from conduit_build.image import engine as conduit_engine
    from conduit_build.image import weights_host as deploy_weights

    volume = f"conduit-weights-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(deploy_weights, "local_engine", lambda host: False)
    monkeypatch.setattr(deploy_weights, "VOLUME", volume)
    monkeypatch.setenv("CONDUIT_CACHE_DIR", str(cache))
    loaded = load(project["config"])
    image, pin = project["pushed"]["reference"], project["pushed"]["weights"]["pinned"]
    client = conduit_engine.client()
    try:
        first = deploy_weights.for_container(client, image, loaded)
        assert first is not None and first.source.endswith("pulled")
        assert first.volumes == {volume: {"bind": "/conduit-weights", "mode": "ro"}}
        assert first.environment["CONDUIT_WEIGHTS"] == pin
        again = deploy_weights.for_container(client, image, loaded)
        assert again is not None and again.source.endswith("cached already")

        running = docker_deploy.deploy(loaded, image, KEY)
        assert running.ready and running.weights == pin
        live = engine.containers.get(f"conduit-{project['name']}")
        assert [(m["Name"], m["RW"]) for m in live.attrs["Mounts"]] == [(volume, False)]
        fetched = [json.loads(line) for line in live.logs().decode().splitlines() if '"weights_fetched"' in line]
        assert [line["source"] for line in fetched] == ["dir"]
        answer = httpx.post(f"http://127.0.0.1:{project['deploy_port']}/predict", json=[[1]],
                            headers={"Authorization": KEY}, timeout=30)
        assert answer.status_code == 200 and answer.json()["result"][0][0] == BIG
    finally:
        for container in engine.containers.list(all=True, filters={"label": f"conduit.deploy={project['name']}"}):
            container.remove(force=True)
        engine.volumes.get(volume).remove(force=True)


def test_a_bundled_hook_edit_sends_only_the_code_layer(engine: Any, cache: Path, tmp_path: Path) -> None:
    """The `bundled` side of the comparison: the same project with image.weights: bundled. A
    python model's models[i].weights are the model layer (COPY model/, before COPY code/), so a
    hook edit stores only the code layer's few bytes, and the weights' layer is the same blob."""
    name = f"weights-bun-{uuid.uuid4().hex[:8]}"
    config = make_project(tmp_path / "p", BIG, config_text(name, free_port(), free_port(), mode="bundled"))
    built = cli(cache, "build", config=config)
    first = cli(cache, "push", config=config)
    assert "weights" not in built or not built["weights"]
    before = blobs(name, first["digest"], DOCKER_MANIFEST)
    assert any(BIG < size < BIG + 1024 * 1024 for size in before.values()), before  # the weights: one layer

    (config.parent / "hooks.py").write_text(EDITED)
    started = time.monotonic()
    edited = cli(cache, "build", config=config)
    built_s = time.monotonic() - started
    pushed, push_s = timed(cache, "push", config=config)
    after = blobs(name, pushed["digest"], DOCKER_MANIFEST)
    stored = new_bytes(before, after)
    print(f"\n[weights] bundled, hook edit: build {built_s:.1f} s + push {push_s:.1f} s, {stored} bytes of new blobs")
    try:
        assert edited["image_id"] != built["image_id"]
        assert 0 < stored < 5 * 1024 * 1024
        assert [d for d, size in after.items() if size > BIG] == [d for d, size in before.items() if size > BIG]
    finally:
        for tag in {built["tag"], edited["tag"]}:
            engine.images.remove(tag, force=True)

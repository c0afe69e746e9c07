"""conduit.yaml's `models[i].batch` and `server.workers`: what validate accepts and
refuses (file:line:col, exit 2), what reaches the runtime's spec, the Kubernetes CPU
request, and the `conduit init` skeletons."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import conduit

from conduit_build.config import load
from conduit_build.deploy.kubernetes import manifests
from conduit_runtime.spec import ServerSpec, usable_cpus

IMAGE = "localhost:5000/demo@sha256:" + "0" * 64
SHARED = {"async_store": "redis://redis:6379/0"}  # several workers need it (validate refuses memory)


def project(root: Path, stage: dict[str, Any] | None = None, server: dict[str, Any] | None = None,
            kubernetes: dict[str, Any] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = {"name": "demo", "models": [{"type": "sklearn", "file": "model.pkl", **(stage or {})}],
              "server": server or {}, "deploy": {"kubernetes": kubernetes or {}}}
    (root / "conduit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "model.pkl").write_bytes(b"pickle")
    (root / "nlp").mkdir(exist_ok=True)
    return root / "conduit.yaml"


def test_validate_refuses_batch_on_spacy_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "conduit.yaml"
    path.write_text("name: demo\nmodels:\n  - type: spacy\n    file: nlp\n    batch: {max_size: 8}\n")
    (tmp_path / "nlp").mkdir()
    result = conduit("validate", "-f", str(path))
    assert result.returncode == 2
    assert f"{path}:5:5: models[0].batch: spacy cannot be batched: " in result.stderr
    assert "a Doc per text" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("batch", "message"), [
    ({"max_size": 0}, "models[0].batch.max_size: Input should be greater than or equal to 1"),
    ({"max_wait_ms": -1}, "models[0].batch.max_wait_ms: Input should be greater than or equal to 0"),
    ({"max_sise": 8}, "models[0].batch.max_sise: unknown key 'max_sise' (did you mean 'max_size'?)"),
])
def test_bad_batch_values_point_at_the_key(tmp_path: Path, batch: dict[str, Any], message: str) -> None:
    result = conduit("validate", "-f", str(project(tmp_path, {"batch": batch})))
    assert result.returncode == 2 and message in result.stderr, result.stderr


@pytest.mark.parametrize("workers", [0, -2, "many", 1.5, True])
def test_workers_is_a_whole_number_or_auto(tmp_path: Path, workers: Any) -> None:
    result = conduit("validate", "-f", str(project(tmp_path, server={"workers": workers})))
    assert result.returncode == 2 and "server.workers: " in result.stderr and "or auto" in result.stderr


def test_batch_and_workers_reach_the_runtime(tmp_path: Path) -> None:
    loaded = load(project(tmp_path, {"batch": {"max_size": 32, "max_wait_ms": 2}}, {"workers": 3, "max_concurrency": 2, **SHARED}))
    raw = json.loads(json.dumps(loaded.runtime_spec()))  # as conduit.json carries it
    spec = ServerSpec.from_dict(raw, tmp_path)
    assert spec.stages[0].batch is not None and spec.stages[0].batch.max_size == 32
    assert spec.stages[0].batch.max_wait_ms == 2
    assert spec.worker_count == 3
    assert spec.running_slots == 2 * 32  # a request waiting for its batch holds a place


def test_no_batch_no_workers_leave_the_spec_as_it_was(tmp_path: Path) -> None:
    raw = load(project(tmp_path)).runtime_spec()
    assert "batch" not in raw["stages"][0] and "workers" not in raw["server"]
    spec = ServerSpec.from_dict(raw, tmp_path)
    assert spec.stages[0].batch is None and spec.worker_count == 1 and spec.running_slots == 4


def test_auto_is_the_usable_cpus(tmp_path: Path) -> None:
    spec = ServerSpec.from_dict(load(project(tmp_path, server={"workers": "auto", **SHARED})).runtime_spec(), tmp_path)
    assert spec.worker_count == usable_cpus()
    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))
    quota = Path("/sys/fs/cgroup/cpu.max")
    if quota.exists() and quota.read_text().split()[0] != "max":
        numbers = quota.read_text().split()
        assert usable_cpus() <= math.ceil(int(numbers[0]) / int(numbers[1]))


def cpu_request(path: Path) -> Any:
    deployment = yaml.safe_load(manifests(load(path), IMAGE)["deployment.yaml"])
    return deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"].get("cpu")


def test_kubernetes_cpu_request_follows_workers_when_set(tmp_path: Path) -> None:
    assert cpu_request(project(tmp_path / "default")) == "500m"  # one worker per pod: scale with replicas
    assert cpu_request(project(tmp_path / "three", server={"workers": 3, **SHARED})) == "3"
    assert cpu_request(project(tmp_path / "auto", server={"workers": "auto", **SHARED})) == "500m"


def test_workers_above_the_cpu_limit_are_refused(tmp_path: Path) -> None:
    path = project(tmp_path, server={"workers": 4, **SHARED}, kubernetes={"resources": {"limits": {"cpu": "2", "memory": "1Gi"}}})
    result = conduit("validate", "-f", str(path))
    assert result.returncode == 2 and "server.workers: 4 workers each want a CPU" in result.stderr


@pytest.mark.parametrize(("kind", "batched"), [("sklearn", True), ("onnx", True), ("xgboost_classifier", True),
                                                ("python", False), ("spacy", False)])
def test_init_skeletons_batch_the_row_wise_types(tmp_path: Path, kind: str, batched: bool) -> None:
    from conduit_build.config.scaffold import init

    try:
        init(tmp_path, kind)
    except Exception as exc:  # a skeleton whose library is missing here still writes its conduit.yaml
        if not (tmp_path / "conduit.yaml").exists():
            raise AssertionError(f"conduit init --type {kind} wrote nothing: {exc}") from exc
    config = yaml.safe_load((tmp_path / "conduit.yaml").read_text())
    assert ("batch" in config["models"][0]) is batched


def test_each_gpu_worker_sees_a_gpu_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """server.workers with a GPU (validate allows up to hardware.count): worker i gets the i-th
    GPU the server sees, rather than every worker loading onto the first."""
    from conduit_runtime.process.supervisor import Supervisor

    path = project(tmp_path, server={"workers": 2, **SHARED})
    path.write_text("hardware: {type: a10g, count: 2}\n" + path.read_text())
    spec = ServerSpec.from_dict(load(path).runtime_spec(), tmp_path)
    assert spec.gpu and spec.worker_count == 2
    supervisor = Supervisor(spec, "127.0.0.1", 0, False, spec.worker_count)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [supervisor.gpu_env(i) for i in range(2)] == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-a,GPU-b")
    assert [supervisor.gpu_env(i) for i in range(2)] == [{"CUDA_VISIBLE_DEVICES": "GPU-a"},
                                                         {"CUDA_VISIBLE_DEVICES": "GPU-b"}]
    cpu = Supervisor(ServerSpec.from_dict(load(project(tmp_path / "cpu", server={"workers": 2, **SHARED}))
                                          .runtime_spec(), tmp_path), "127.0.0.1", 0, False, 2)
    assert cpu.gpu_env(1) == {}

"""`hardware: gpu` never falls back to the CPU silently: where the model cannot get its GPU
(this machine has none), `conduit serve` stays not ready (/ready 503 startup_failed) and its
log says why in one line. torch and onnx (onnxruntime lists the CUDA provider it was built
with even where it cannot load it) and hf_pipeline, served in-process over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import conduit, wait_for

torch = pytest.importorskip("torch", reason="the torch extra is not installed")
if torch.cuda.is_available():
    pytest.skip("a GPU is visible here: scripts/gpu-check covers serving on it", allow_module_level=True)


def gpu_project(root: Path, model_type: str) -> Path:
    directory = root / model_type
    made = conduit("init", "--type", model_type, str(directory))
    assert made.returncode == 0, made.stdout + made.stderr
    config = directory / "conduit.yaml"
    text = config.read_text()
    assert "hardware: cpu\n" in text
    config.write_text(text.replace("hardware: cpu\n", "hardware: gpu\n"))
    return config


def load_failures(log: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "load_failed"]


@pytest.mark.parametrize(("model_type", "says"), [
    ("torch", "sees no CUDA device"),
    ("onnx", "the CUDA provider did not load"),
    ("hf_pipeline", "sees no CUDA device"),
])
def test_gpu_target_without_a_gpu_is_never_ready(tmp_path: Path, serve: Any, model_type: str, says: str) -> None:
    server = serve(gpu_project(tmp_path, model_type), wait_ready=False, timeout=180)
    wait_for(lambda: load_failures(server.logs()) != [], timeout=180, what="the load_failed line")
    ready = httpx.get(server.url + "/ready", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "startup_failed"
    assert "CUDA" not in ready.text  # the reason is the log's, not the client's
    predict = httpx.post(server.url + "/predict", json=[[5.1, 3.5, 1.4, 0.2]], headers=server.headers, timeout=5)
    assert predict.status_code == 503
    [failure] = load_failures(server.logs())
    assert failure["error"].startswith("hardware: gpu, but ") and says in failure["error"]
    assert "\n" not in failure["error"] and "traceback" not in failure  # one clear line
    assert "nvidia.com/gpu" in failure["error"]  # and how to fix it
    assert server.process.poll() is None  # still serving /health and /ready


def test_cpu_target_of_the_same_model_is_ready(tmp_path: Path, serve: Any) -> None:
    """The check costs a CPU target nothing: the same onnx project on `hardware: cpu` serves."""
    config = gpu_project(tmp_path, "onnx")
    config.write_text(config.read_text().replace("hardware: gpu\n", "hardware: cpu\n"))
    server = serve(config)
    answer = httpx.post(server.url + "/predict", json=[[5.1, 3.5, 1.4, 0.2]], headers=server.headers, timeout=10)
    assert answer.status_code == 200 and answer.json()["result"] == [0]
    assert load_failures(server.logs()) == []

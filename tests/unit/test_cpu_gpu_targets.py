"""CPU targets never carry CUDA; GPU targets render and resolve their GPU set. `conduit render`
and `conduit lock` with the real uv against the real index (PyPI): resolution only, nothing is
downloaded beyond metadata. PyPI's torch pulls nvidia-* wheels; PyTorch's own index
(download.pytorch.org) does not answer from here; /opt/wheels (CONDUIT_TORCH_WHEELS) holds the
CPU torch wheel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import conduit

from conduit_build.config import load
from conduit_build.image.context import render
from conduit_build.image.lockfile import LockFile
from conduit_build.image.pip import PipSettings

WHEELS = Path(os.environ.get("CONDUIT_TORCH_WHEELS", "/opt/wheels"))
MODEL = "class Model:\n    def predict(self, data):\n        return data\n"


def project(folder: Path, requirements: str, hardware: str = "cpu") -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "model.py").write_text(MODEL)
    (folder / "conduit.yaml").write_text(f"name: targets\nhardware: {hardware}\nmodels: [{{type: python, file: 'model.py:Model'}}]\n"
                                         f"requirements: {requirements}\n")
    return folder / "conduit.yaml"


@pytest.mark.parametrize("hardware", ["gpu", "{type: a10g, count: 2}"])
def test_gpu_image_renders_with_cuda_wheels_and_no_cpu_guard(tmp_path: Path, hardware: str) -> None:
    config = project(tmp_path, "[torch==2.13.0, transformers==5.24.0, onnxruntime==1.32.0, xgboost-cpu==3.2.0]", hardware)
    context = render(load(config), PipSettings())
    dockerfile = context.files["Dockerfile"].decode()
    assert "--extra-index-url https://download.pytorch.org/whl/cu" in dockerfile
    assert "CUDA wheels resolved for a cpu target" not in dockerfile  # a GPU target wants them
    assert 'NVIDIA_VISIBLE_DEVICES="all"' in dockerfile
    assert "ENV HOME=/tmp/conduit-home" in dockerfile
    requirements = context.files["requirements.txt"].decode().splitlines()
    assert "onnxruntime-gpu==1.32.0" in requirements and "xgboost==3.2.0" in requirements


def test_cpu_image_stops_on_cuda_wheels_and_caches_under_tmp(tmp_path: Path) -> None:
    context = render(load(project(tmp_path, "[torch==2.13.0]")), PipSettings())
    dockerfile = context.files["Dockerfile"].decode()
    guard = dockerfile.index("CUDA wheels resolved for a cpu target")
    assert dockerfile.index("uv pip compile") < guard < dockerfile.index("uv pip sync")  # before any download
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in dockerfile
    assert "ENV HOME=/tmp/conduit-home XDG_CACHE_HOME=/tmp/conduit-home/.cache" in dockerfile


def test_find_links_with_torch_replaces_the_cpu_index(tmp_path: Path) -> None:
    """A torch wheel among the find-links: PyTorch's index is not asked (where it does not
    answer, asking it fails the whole resolution)."""
    links = tmp_path / "wheels"
    links.mkdir()
    (links / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"not read by render")
    config = project(tmp_path / "p", "[torch==2.13.0]")
    dockerfile = render(load(config), PipSettings(find_links=links)).files["Dockerfile"].decode()
    assert "download.pytorch.org" not in dockerfile and "UV_FIND_LINKS=" in dockerfile
    gpu = project(tmp_path / "gpu", "[torch==2.13.0]", "gpu")  # a +cpu wheel is no GPU target's torch
    dockerfile = render(load(gpu), PipSettings(find_links=links)).files["Dockerfile"].decode()
    assert "--extra-index-url https://download.pytorch.org/whl/cu" in dockerfile


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    return lines[0]


def test_cpu_lock_without_the_cpu_wheel_is_one_line(tmp_path: Path) -> None:
    result = conduit("lock", "-f", str(project(tmp_path, "[torch==2.13.0]")), env={"CONDUIT_PIP_FIND_LINKS": ""})
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "PyTorch's CPU wheel index (https://download.pytorch.org/whl/cpu) did not answer" in line
    assert "image.find_links" in line and "conduit.lock" in line
    assert not (tmp_path / "conduit.lock").exists()


def torch_wheels() -> Path:
    if not any(WHEELS.glob("torch-*+cpu-*.whl")):
        pytest.fail(f"no CPU torch wheel in {WHEELS} (set CONDUIT_TORCH_WHEELS to a folder holding one)")
    return WHEELS


def test_cpu_lock_that_resolves_cuda_is_one_line(tmp_path: Path) -> None:
    """Unpinned torch: PyPI's newer CUDA build wins over the +cpu wheel at hand, and pulls nvidia-*."""
    config = project(tmp_path, "[torch]")
    result = conduit("lock", "-f", str(config), env={"CONDUIT_PIP_FIND_LINKS": str(torch_wheels())})
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "a cpu target resolved CUDA wheels (nvidia-" in line and "a CPU image never carries CUDA" in line
    assert not (tmp_path / "conduit.lock").exists()


def test_cpu_lock_with_the_cpu_wheel_pins_it(tmp_path: Path) -> None:
    config = project(tmp_path, "[torch==2.13.0]")
    result = conduit("lock", "-f", str(config), env={"CONDUIT_PIP_FIND_LINKS": str(torch_wheels())})
    assert result.returncode == 0, result.stderr
    pins = {pin.name: pin.version for pin in LockFile.read(tmp_path / "conduit.lock").pins()}
    assert pins["torch"] == "2.13.0+cpu" and not any(name.startswith("nvidia") for name in pins)


def test_gpu_lock_resolves_the_gpu_set(tmp_path: Path) -> None:
    """hardware: gpu takes onnxruntime-gpu and xgboost (with NVIDIA's NCCL): CUDA wheels are the
    point there, so the CPU guard stays out of the way."""
    config = project(tmp_path, '["onnxruntime[cuda,cudnn]", xgboost-cpu==3.2.0]', "gpu")
    result = conduit("lock", "-f", str(config))
    assert result.returncode == 0, result.stderr
    lock = LockFile.read(tmp_path / "conduit.lock")
    names = {pin.name for pin in lock.pins()}
    assert lock.hardware == "gpu"
    assert {"onnxruntime-gpu", "xgboost"} <= names and "xgboost-cpu" not in names
    assert any(name.startswith("nvidia-") for name in names)

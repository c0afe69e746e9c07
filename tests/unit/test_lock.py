"""`conduit lock` with the real uv against the real package index (PyPI): resolution only,
for the image's platform and Python whatever the host's; nothing is installed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import conduit

from conduit_build.image.lockfile import LockFile
from conduit_build.image.requirements import RUNTIME_DIR

MODEL = "class Model:\n    def predict(self, data):\n        return data\n"


def project(folder: Path, requirements: str, hardware: str = "cpu", python: str = "3.11") -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "model.py").write_text(MODEL)
    (folder / "conduit.yaml").write_text(f'name: lockme\npython: "{python}"\nhardware: {hardware}\n'
                                         f'models: [{{type: python, file: "model.py:Model"}}]\nrequirements: {requirements}\n')
    return folder / "conduit.yaml"


def lock(config: Path, *extra: str) -> dict[str, object]:
    result = conduit("lock", "-f", str(config), "--json", *extra)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def versions(config: Path) -> dict[str, str]:
    return {pin.name: pin.version for pin in LockFile.read(config.parent / "conduit.lock").pins()}


def test_lock_pins_every_package_with_hashes_for_the_image(tmp_path: Path) -> None:
    config = project(tmp_path, "[scikit-learn==1.9.1]", python="3.12")  # the host's Python does not matter
    first = lock(config)
    text = (tmp_path / "conduit.lock").read_text()
    parsed = LockFile.parse(text)
    assert parsed.python == "3.12" and parsed.hardware == "cpu"
    pins = parsed.pins()
    names = {pin.name for pin in pins}
    assert {"scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl"} <= names  # the transitive ones too
    runtime = dict(line.split("==") for line in (RUNTIME_DIR / "requirements.txt").read_text().splitlines()
                   if "==" in line and not line.startswith("#"))
    assert {n.lower().replace("_", "-"): v for n, v in runtime.items()}.items() <= versions(config).items()
    assert all(pin.hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes) for pin in pins)
    assert first["changed"] is True
    again = lock(config)  # nothing changed: the same file
    assert again["changed"] is False and (tmp_path / "conduit.lock").read_text() == text


def test_lock_keeps_its_pins_until_asked_to_upgrade(tmp_path: Path) -> None:
    config = project(tmp_path, "[joblib==1.4.2, threadpoolctl==3.5.0]")
    lock(config)
    project(tmp_path, "[joblib, threadpoolctl]")  # loosened: the lock is stale, its pins still fit
    lock(config)
    assert versions(config)["joblib"] == "1.4.2" and versions(config)["threadpoolctl"] == "3.5.0"
    lock(config, "--upgrade", "joblib")  # only joblib moves
    assert versions(config)["joblib"] != "1.4.2" and versions(config)["threadpoolctl"] == "3.5.0"
    lock(config, "--upgrade")  # everything may move
    assert versions(config)["threadpoolctl"] != "3.5.0"


def test_gpu_target_locks_cuda_wheels_without_installing_them(tmp_path: Path) -> None:
    """hardware: gpu renames onnxruntime to onnxruntime-gpu, whose CUDA extras pull NVIDIA's
    wheels from PyPI. (torch's CUDA index, download.pytorch.org, does not answer from here.)"""
    config = project(tmp_path, '["onnxruntime[cuda,cudnn]"]', hardware="gpu")
    lock(config)
    parsed = LockFile.read(tmp_path / "conduit.lock")
    names = set(versions(config))
    assert parsed.hardware == "gpu"
    assert "onnxruntime-gpu" in names and "onnxruntime" not in names
    assert any(name.startswith("nvidia-cudnn") for name in names) and any(name.startswith("nvidia-cublas") for name in names)


def test_unresolvable_requirements_fail_with_uvs_reason(tmp_path: Path) -> None:
    config = project(tmp_path, "[conduit-no-such-package==9.9.9]")
    result = conduit("lock", "-f", str(config))
    assert result.returncode == 1
    assert result.stderr.startswith("error: uv could not resolve the requirements for cpu, python 3.11:")
    assert "conduit-no-such-package" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "conduit.lock").exists()


def test_plain_build_locks_a_stale_lock_again_and_says_so(tmp_path: Path) -> None:
    """Without --locked, a stale lock is resolved again (like `uv sync`) before anything is
    built; here no engine answers, so the build itself then fails (exit 1) after the lock."""
    config = project(tmp_path, "[joblib==1.4.2]")
    lock(config)
    project(tmp_path, "[joblib==1.4.2, threadpoolctl==3.5.0]")
    result = conduit("build", "-f", str(config), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.returncode == 1
    assert result.stderr.startswith("warning: conduit.lock is stale (the requirements changed since the lock was "
                                    "written): locking again\n")
    assert versions(config)["threadpoolctl"] == "3.5.0" and versions(config)["joblib"] == "1.4.2"
    assert conduit("validate", "-f", str(config)).stderr == ""  # current again

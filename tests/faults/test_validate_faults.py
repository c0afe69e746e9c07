"""`conduit validate` refuses worker settings that cannot work, at the file, line and
column of server.workers, with exit status 2 (through the real CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import conduit

SHARED = "  async_store: redis://redis:6379/0\n"


@pytest.mark.parametrize(("hardware", "server", "says"), [
    ("gpu", "  workers: 2\n" + SHARED, "2 workers each load the model onto a GPU, and hardware gives 1"),
    ("{type: a10g, count: 2}", "  workers: 3\n" + SHARED, "lower workers to 2 or raise hardware.count"),
    ("gpu", "  workers: auto\n" + SHARED, "auto starts one worker per CPU"),
    ("cpu", "  workers: 2\n", "2 workers with async_store: memory"),
    ("cpu", "  workers: auto\n", "auto workers with async_store: memory"),
])
def test_validate_refuses_workers_that_cannot_work(tmp_path: Path, hardware: str, server: str, says: str) -> None:
    """More workers than GPUs (each loads the model onto one), auto with a GPU (one per CPU),
    and several workers with the memory async store (a GET reaching another worker is 404).
    Before issue 19 all of these validated (exit 0; the memory store only warned)."""
    (tmp_path / "model.py").write_text("class Model:\n    def predict(self, data):\n        return data\n")
    path = tmp_path / "conduit.yaml"
    path.write_text(f"name: workers\nhardware: {hardware}\nmodels:\n  - type: python\n    file: model.py:Model\n"
                    f"server:\n{server}")
    done = conduit("validate", "-f", str(path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{path}:7:12: server.workers: " in done.stderr and says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("hardware", "server"), [
    ("{type: a10g, count: 2}", "  workers: 2\n" + SHARED),
    ("cpu", "  workers: 3\n" + SHARED),
    ("gpu", "  workers: 1\n"),
])
def test_validate_accepts_workers_that_can_work(tmp_path: Path, hardware: str, server: str) -> None:
    (tmp_path / "model.py").write_text("class Model:\n    def predict(self, data):\n        return data\n")
    path = tmp_path / "conduit.yaml"
    path.write_text(f"name: workers\nhardware: {hardware}\nmodels:\n  - type: python\n    file: model.py:Model\n"
                    f"server:\n{server}")
    done = conduit("validate", "-f", str(path))
    assert done.returncode == 0, done.stderr

"""scripts/gpu-check without a GPU: it skips cleanly (exit 0, one line saying why) and leaves
the README alone. Where a GPU is lent it measures instead (run it there by hand)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_skips_without_a_gpu() -> None:
    torch = pytest.importorskip("torch", reason="the torch extra is not installed")
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here: scripts/gpu-check measures instead of skipping")
    readme = (ROOT / "README.md").read_bytes()
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu-check")], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("gpu-check: skipped: no CUDA device is visible to torch ")
    assert len(result.stdout.splitlines()) == 1 and result.stderr == ""
    assert (ROOT / "README.md").read_bytes() == readme

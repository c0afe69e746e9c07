"""V2 infer bounds against a real `conduit serve` of a python model: a shape whose element
count is 0 may not carry a large dimension (`[2000000, 0]` built two million rows, 66 MB
and seconds of a worker thread, before this change), a dimension past int64 is 400 (it was
a 500 from numpy), and binary tensors are checked for finite numbers as JSON ones are
(they were passed to the model unchecked)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from conftest import API_KEY

CONFIG = """
name: echo
models:
  - type: python
    file: model.py:Echo
"""

MODEL = '''
import numpy as np


class Echo:
    thread_safe = True

    def predict(self, data, files):
        return np.asarray(data, dtype=np.float32) if not isinstance(data, list) else [len(data)]
'''

AUTH = {"Authorization": API_KEY}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def infer(url: str, body: dict[str, Any]) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    answer = httpx.post(f"{url}/v2/models/echo/infer", content=json.dumps(body), headers=AUTH, timeout=30)
    return answer, time.monotonic() - began


def test_zero_size_and_huge_dimensions_are_400_without_memory(serve: Any, tmp_path: Path) -> None:
    """Breaks on purpose: [2000000, 0] with data [] (BYTES built 2M lists; FP32 passed) and
    [2**70, 0] (a 500 from numpy) — each must be a quick 400 naming the input, RSS unchanged."""
    (tmp_path / "conduit.yaml").write_text(CONFIG)
    (tmp_path / "model.py").write_text(MODEL)
    server = serve(tmp_path / "conduit.yaml")
    good, _ = infer(server.url, {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]})
    assert good.status_code == 200, good.text
    before = rss_kb(server.process.pid)
    for datatype, shape in (("BYTES", [2000000, 0]), ("FP32", [2000000, 0]), ("FP32", [2**70, 0]),
                            ("BYTES", [2**70, 0]), ("FP32", [2**40, 2**40])):
        answer, took = infer(server.url, {"inputs": [{"name": "big", "shape": shape, "datatype": datatype, "data": []}]})
        assert answer.status_code == 400, (datatype, shape, answer.status_code, answer.text)
        body = answer.json()
        assert list(body) == ["error"] and "input 'big'" in body["error"], body
        assert took < 5, f"{datatype} {shape} took {took:.1f} s"  # a sanity bound, not a benchmark
    grown_mb = (rss_kb(server.process.pid) - before) / 1024
    assert grown_mb < 20, f"RSS grew {grown_mb:.1f} MB"
    # A zero-size tensor whose dimensions do not exceed 1 is still a tensor.
    empty, _ = infer(server.url, {"inputs": [{"name": "x", "shape": [1, 0], "datatype": "FP32", "data": []}]})
    assert empty.status_code == 200, empty.text


def test_binary_tensors_get_the_finite_check(serve: Any, tmp_path: Path) -> None:
    """Breaks on purpose: an FP32 binary tensor holding inf/NaN reached the model; JSON ones were 400."""
    (tmp_path / "conduit.yaml").write_text(CONFIG)
    (tmp_path / "model.py").write_text(MODEL)
    server = serve(tmp_path / "conduit.yaml")
    for bad in (np.inf, np.nan):
        blob = np.array([1.0, bad], dtype=np.float32).tobytes()
        header = json.dumps({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32",
                                         "parameters": {"binary_data_size": len(blob)}}]}).encode()
        answer = httpx.post(f"{server.url}/v2/models/echo/infer", content=header + blob, timeout=30,
                            headers={**AUTH, "Content-Type": "application/octet-stream",
                                     "Inference-Header-Content-Length": str(len(header))})
        assert answer.status_code == 400, answer.text
        assert "input 'x'" in answer.json()["error"] and "finite" in answer.json()["error"]

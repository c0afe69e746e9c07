"""Wedges restart (issue 19): a batched stage whose model hangs turns /ready 503 `wedged`,
and /live 503 once that lasted server.wedge_restart_s; /health stays 200. Against `conduit
serve` over real sockets, with a python model written at test time that hangs until the test
releases it (so nothing is left running)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from conftest import Server, wait_for

HANG = '''
import time
from pathlib import Path

HERE = Path(__file__).parent

class Hang:
    def predict(self, data):
        if data == ["hang"]:
            (HERE / "hanging").touch()
            deadline = time.monotonic() + 60  # bounded: the test releases it long before
            while not (HERE / "release").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return data
'''

CONFIG = """
name: wedge
models:
  - type: python
    file: model.py:Hang
    batch: {max_size: 8, max_wait_ms: 0}
server: {max_concurrency: 4, timeout_s: 1, wedge_restart_s: 2}
tests:
  - name: fine
    json: ["fine"]
"""


def status(server: Server, path: str) -> int:
    return httpx.get(server.url + path, timeout=5).status_code


def test_a_hung_batched_model_turns_ready_wedged_then_live_503(serve: Any, tmp_path: Path) -> None:
    """Breaks on purpose: with a batched stage, a hung model gave every request 504 while /ready
    stayed 200 (the wedge threshold counted max_concurrency x max_size places, and a call of the
    stage was never overdue), and there was no /live for a restart."""
    root = tmp_path / "wedge"
    root.mkdir()
    (root / "model.py").write_text(HANG)
    (root / "conduit.yaml").write_text(CONFIG)
    server: Server = serve(root / "conduit.yaml")
    try:
        assert status(server, "/live") == 200
        answer = httpx.post(server.url + "/predict", json=["hang"], headers=server.headers, timeout=30)
        assert answer.status_code == 504, answer.text
        assert (root / "hanging").exists()
        # Every other request now waits behind the hung call, and gets 504 too.
        answer = httpx.post(server.url + "/predict", json=["fine"], headers=server.headers, timeout=30)
        assert answer.status_code == 504, answer.text

        wait_for(lambda: status(server, "/ready") == 503, timeout=10, what="/ready to say wedged")
        ready = httpx.get(server.url + "/ready", timeout=5)
        assert ready.json()["error"]["code"] == "wedged"
        wait_for(lambda: status(server, "/live") == 503, timeout=15, what="/live to ask for a restart")
        live = httpx.get(server.url + "/live", timeout=5)
        assert live.json()["error"]["code"] == "wedged"
        assert status(server, "/health") == 200
        wedged = [line for line in server.logs().splitlines() if '"event":"wedged"' in line.replace(" ", "")]
        assert len(wedged) == 1, server.logs()[-3000:]
    finally:
        (root / "release").touch()  # nothing is left running
    wait_for(lambda: status(server, "/ready") == 200, timeout=20, what="/ready once the call ended")
    assert status(server, "/live") == 200
    answer = httpx.post(server.url + "/predict", json=["fine"], headers=server.headers, timeout=30)
    assert answer.status_code == 200 and answer.json()["result"] == ["fine"]


ASYNC_CONFIG = """
name: wedge-async
models:
  - type: python
    file: model.py:Hang
server: {max_concurrency: 1, timeout_s: 30, async_timeout_s: 1, wedge_restart_s: 60}
tests:
  - name: fine
    json: ["fine"]
"""


def test_an_async_prediction_hung_past_its_deadline_counts_toward_a_wedge(serve: Any, tmp_path: Path) -> None:
    """Breaks on purpose: an async prediction whose call ran past server.async_timeout_s held
    the only model thread, yet was never counted as overdue: /ready stayed 200."""
    root = tmp_path / "wedge-async"
    root.mkdir()
    (root / "model.py").write_text(HANG)
    (root / "conduit.yaml").write_text(ASYNC_CONFIG)
    server: Server = serve(root / "conduit.yaml")
    try:
        accepted = httpx.post(server.url + "/predict", json=["hang"], timeout=30,
                              headers={**server.headers, "Prefer": "respond-async"})
        assert accepted.status_code == 202, accepted.text
        url = server.url + accepted.json()["urls"]["get"]
        wait_for(lambda: httpx.get(url, headers=server.headers, timeout=5).json()["status"] == "failed", timeout=15,
                 what="the async prediction to time out")
        assert (root / "hanging").exists()
        wait_for(lambda: status(server, "/ready") == 503, timeout=10, what="/ready to say wedged")
        assert httpx.get(server.url + "/ready", timeout=5).json()["error"]["code"] == "wedged"
        assert status(server, "/live") == 200  # not for server.wedge_restart_s yet
    finally:
        (root / "release").touch()  # nothing is left running
    wait_for(lambda: status(server, "/ready") == 200, timeout=20, what="/ready once the call ended")

"""Rollouts without errors: SIGTERM under load, over real sockets.

A load balancer keeps routing to a pod for seconds after Kubernetes sends it SIGTERM,
so the server keeps admitting predictions for server.drain_delay_s while /ready
already answers 503, then drains and exits 0.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
from conftest import API_KEY, start_server, wait_for

MODEL = '''
import time


class Model:
    def predict(self, data):
        time.sleep(0.05)  # a request is always in flight somewhere
        return [len(data)]
'''


def project(root: Path) -> Path:
    (root / "model.py").write_text(MODEL)
    (root / "conduit.yaml").write_text(
        "name: rollout\nmodels:\n  - type: python\n    file: model.py:Model\n"
        "server:\n  max_concurrency: 4\n  timeout_s: 10\n  drain_delay_s: 3\n"
        "tests:\n  - name: warm\n    json: [1]\n")
    return root / "conduit.yaml"


def test_sigterm_under_load_answers_every_request_of_the_delay(tmp_path: Path) -> None:
    """Four clients send predictions without pause; SIGTERM comes in the middle. Every request
    sent in the first 2 s after it is answered 200 (drain_delay_s is 3), /ready is 503 within
    0.5 s of it, and the process exits 0. Before issue 19 every prediction after SIGTERM was
    503 at once (and no drain_delay_s key existed)."""
    server = start_server(project(tmp_path), tmp_path)
    sent: list[tuple[float, int]] = []  # (when it was sent, its status)
    stop_at = [time.monotonic() + 30.0]  # moved to 2 s after the signal once it is sent

    def client() -> None:
        while time.monotonic() < stop_at[0]:
            began = time.monotonic()
            try:  # a connection each, as a balancer's new requests come
                status = httpx.post(server.url + "/predict", json=[1, 2], headers={"Authorization": API_KEY},
                                    timeout=10).status_code
            except httpx.HTTPError:
                status = 0
            sent.append((began, status))

    try:
        threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(sent) >= 20, 20, "the load to run")
        signalled = time.monotonic()
        stop_at[0] = signalled + 2.0
        server.process.send_signal(signal.SIGTERM)
        not_ready_at = None
        for _ in range(200):  # /ready, polled at once and then every 10 ms
            if httpx.get(server.url + "/ready", timeout=5).status_code == 503:
                not_ready_at = time.monotonic()
                break
            time.sleep(0.01)
        for thread in threads:
            thread.join(15)
        assert not_ready_at is not None and not_ready_at - signalled < 0.5, "/ready turns 503 at once"
        after = [status for began, status in sent if signalled <= began <= signalled + 2.0]
        assert len(after) >= 8, f"the clients kept sending after the signal: {len(after)}"
        assert after == [200] * len(after), f"statuses sent within 2 s of SIGTERM: {sorted(set(after))}"
        assert server.process.wait(30) == 0
        assert '"event":"admission_stopped"' in server.logs()
    finally:
        server.stop()

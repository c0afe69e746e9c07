"""Async bodies queued in the memory store wait on disk, not in RAM."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from conftest import API_KEY, Server, start_server, wait_for

MODEL = '''
import time
from pathlib import Path


class Model:
    def load(self, project_dir):
        self.dir = Path(project_dir)

    def predict(self, data):
        while not (self.dir / "stop").exists():  # holds the only slot until the test lets go
            time.sleep(0.01)
        return [len(data)]
'''

BODIES = 200
BODY_MB = 4.7


def rss_mib(server: Server) -> float:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_queued_bodies_are_spooled_to_disk(tmp_path: Path) -> None:
    """200 async bodies of 4.7 MB wait in the queue (the model holds the only slot): the
    server's RSS grows by less than 150 MB. Fails before the change, when the memory store
    kept every queued body in RAM (+4.8 MB per body: about 950 MB here)."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "model.py").write_text(MODEL)
    (root / "conduit.yaml").write_text(
        "name: spooled\nmodels:\n  - type: python\n    file: model.py:Model\n"
        "server:\n  max_concurrency: 1\n  max_body_mb: 10\n  async_max_queue: 300\n")
    server = start_server(root / "conduit.yaml", tmp_path)
    headers = {"Authorization": API_KEY, "Prefer": "respond-async", "Content-Type": "application/json"}
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            blocker = client.post("/predict", content=b"[0]").json()
            wait_for(lambda: client.get(f"/predictions/{blocker['id']}").json()["status"] == "processing", 10,
                     "the blocker to hold the slot")
            before = rss_mib(server)
            body = json.dumps(["x" * int(BODY_MB * 1_000_000)]).encode()
            ids = []
            for _ in range(BODIES):
                answer = client.post("/predict", content=body)
                assert answer.status_code == 202, answer.text
                ids.append(answer.json()["id"])
            grown = rss_mib(server) - before
            assert all(client.get(f"/predictions/{id_}").json()["status"] == "starting" for id_ in ids[-3:])
            assert grown < 150, f"RSS grew by {grown:.0f} MiB for {BODIES} queued bodies of {BODY_MB} MB"
            # read back whole when they run
            (root / "stop").write_text("")
            wait_for(lambda: client.get(f"/predictions/{ids[-1]}").json()["status"] == "succeeded", 60,
                     "the last queued body to run")
            assert client.get(f"/predictions/{ids[0]}").json()["result"] == [1]
    finally:
        server.stop()

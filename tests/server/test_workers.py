"""server.workers: several worker processes on one port, over real HTTP.

The iris example with `workers: 2`: both workers answer, /metrics adds up every
worker's samples, a worker killed with SIGKILL is logged and replaced while the
other keeps answering (after a back-off of 1 s), and SIGTERM drains them all (exit
status 0, no worker left behind). Several workers need a shared async store: a
redis-server of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, metric, redis_server, start_server, wait_for

FLOWER = [[5.1, 3.5, 1.4, 0.2]]


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()
    return [int(child) for child in found]


def events(server: Server, name: str) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in server.logs().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == name]


@pytest.fixture(scope="module")
def two(examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("workers-iris")
    shutil.copy(examples / "iris" / "model.pkl", root / "model.pkl")
    with redis_server(root / "redis") as url:  # several workers share their async predictions there
        config = (examples / "iris" / "conduit.yaml").read_text().replace(
            "  max_concurrency: 4\n", f"  max_concurrency: 4\n  workers: 2\n  async_store: {url}\n")
        assert "workers: 2" in config
        (root / "conduit.yaml").write_text(config)
        server = start_server(root / "conduit.yaml", root, timeout=240)
        yield server
        server.stop()


def predict_many(server: Server, count: int) -> list[int]:
    def one(_: int) -> int:
        # A connection each: the kernel hands them to whichever worker accepts first.
        return httpx.post(server.url + "/predict", json=FLOWER, headers=server.headers, timeout=30).status_code

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(count)))


def test_two_workers_answer_and_metrics_add_up(two: Server) -> None:
    workers = children(two.process.pid)
    assert len(workers) == 2, workers
    # /ready is 200 once one worker is ready (http/readiness.py): the other may still be loading.
    wait_for(lambda: len(events(two, "ready")) == 2, 120, "both workers ready")
    before = metric(two, "conduit_predictions_total")
    assert predict_many(two, 200) == [200] * 200
    folder = Path(events(two, "workers")[0]["folder"])
    answered = {path.name for path in (folder / "metrics").glob("counter_*.db")}
    assert len(answered) == 2, f"both workers answered predictions: {answered}"
    # Whichever worker answers the scrape, it counts every worker's predictions.
    for _ in range(6):
        assert metric(two, "conduit_predictions_total") - before == 200
    assert metric(two, "conduit_ready") == 1


def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(two: Server) -> None:
    victim, survivor = children(two.process.pid)
    total = metric(two, "conduit_predictions_total")
    os.kill(victim, signal.SIGKILL)
    assert predict_many(two, 50) == [200] * 50  # the other worker answers meanwhile
    wait_for(lambda: len(events(two, "worker_died")) == 1, timeout=10, what="the death to be logged")
    died = events(two, "worker_died")[0]
    assert died["pid"] == victim and died["exit_status"] == -signal.SIGKILL
    wait_for(lambda: len(children(two.process.pid)) == 2, timeout=10, what="a new worker")
    assert victim not in children(two.process.pid) and survivor in children(two.process.pid)
    assert httpx.get(two.url + "/ready", timeout=5).status_code == 200  # one ready worker keeps the pod ready
    wait_for(lambda: len(events(two, "ready")) == 3, timeout=180, what="the new worker to be ready")
    # The dead worker's counts are kept: the totals never go back.
    assert metric(two, "conduit_predictions_total") - total == 50


def test_sigterm_drains_every_worker(two: Server) -> None:
    workers = children(two.process.pid)
    two.process.send_signal(signal.SIGTERM)
    assert two.process.wait(60) == 0
    assert len(events(two, "draining")) == 2
    assert events(two, "workers_stopped")
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()

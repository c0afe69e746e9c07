"""Workers under faults (server.workers: 2), over real sockets: a worker whose load
kills its process is restarted after a growing back-off, and meanwhile the other
serves and the pod stays ready."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEY, Server, redis_server, start_server, wait_for

MODEL = '''
import os
from pathlib import Path


class Model:
    def load(self, project_dir):
        if (Path(project_dir) / "die").exists():  # the test makes every later load die
            os._exit(3)
        if (Path(project_dir) / "raise").exists():  # or fail
            raise RuntimeError("the weights are gone")

    def predict(self, data):
        return [len(data)]
'''


def events(server: Server, name: str) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in server.logs().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == name]


@pytest.mark.parametrize(("fault", "exit_status"), [("die", 3), ("raise", 1)])
def test_a_worker_whose_load_dies_backs_off_while_the_other_keeps_the_pod_ready(
        tmp_path: Path, fault: str, exit_status: int) -> None:
    """One of two workers is killed, and every load after that kills its process (or raises:
    the replacement then exits 1): the restarts wait 1 s, then 2 s (worker_died →
    worker_started, from the log lines' times); meanwhile /ready and /v2/health/ready both
    answer 200 (one worker is ready), the other worker answers every prediction, and the dead
    workers' live metric files are gone. Before issue 19 the restart came at once (16
    restarts in 8 s), the log lines had no time, /ready was 503 while one worker of two was
    not ready, and a replacement whose load raised stayed up answering 503."""
    (tmp_path / "model.py").write_text(MODEL)
    with redis_server(tmp_path / "redis") as url:
        (tmp_path / "conduit.yaml").write_text(
            "name: dying\nmodels:\n  - type: python\n    file: model.py:Model\n"
            f"server:\n  workers: 2\n  async_store: {url}\ntests:\n  - name: warm\n    json: [1]\n")
        server = start_server(tmp_path / "conduit.yaml", tmp_path, timeout=120)
        try:
            wait_for(lambda: len(events(server, "ready")) == 2, 60, "both workers to be ready")
            pids = [event["pid"] for event in events(server, "worker_started")]
            (tmp_path / fault).touch()
            os.kill(pids[0], signal.SIGKILL)
            deadline = time.monotonic() + 12
            probes: list[tuple[int, int, int]] = []
            while len(events(server, "worker_died")) < 3 and time.monotonic() < deadline:
                probes.append((httpx.get(server.url + "/ready", timeout=5).status_code,
                               httpx.get(server.url + "/v2/health/ready", timeout=5).status_code,
                               httpx.post(server.url + "/predict", json=[1, 2], headers={"Authorization": API_KEY},
                                          timeout=5).status_code))
                time.sleep(0.05)
            died, started = events(server, "worker_died"), events(server, "worker_started")[2:]
            assert len(died) >= 3, f"the kill and two loads that died: {died}"
            assert died[0]["pid"] == pids[0] and died[1]["exit_status"] == exit_status
            gaps = [start["time"] - death["time"] for death, start in zip(died, started, strict=False)]
            assert len(gaps) >= 2 and gaps[0] >= 1.0 and gaps[1] >= 2.0, f"back-off between death and start: {gaps}"
            assert [death["restart_in_s"] for death in died[:3]] == [1, 2, 4]
            assert probes and set(probes) == {(200, 200, 200)}, f"(/ready, /v2/health/ready, /predict): {set(probes)}"
            metrics = Path(events(server, "workers")[0]["folder"]) / "metrics"
            live = {path.name for path in metrics.glob("gauge_live*.db")}
            assert not [name for name in live if any(name.endswith(f"_{d['pid']}.db") for d in died)], live
        finally:
            server.stop()

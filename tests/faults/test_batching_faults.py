"""Batching that never doubles work (issue 19), against `conduit serve` over real sockets,
with python models written at test time that append the rows of each call to a file."""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from conftest import Server, metric, wait_for


def project(root: Path, model: str, config: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.py").write_text(model)
    (root / "conduit.yaml").write_text(config)
    return root / "conduit.yaml"


def calls(root: Path) -> list[int]:
    """The rows of each model call so far, in order."""
    path = root / "calls"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def events(server: Server, name: str) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in server.logs().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == name]


ONE_VALUE = '''
import time
from pathlib import Path

HERE = Path(__file__).parent
CALLS = HERE / "calls"

class Count:
    """One value per call, whatever the rows: its output cannot be split back per request."""

    def predict(self, data):
        with CALLS.open("a") as log:
            log.write(f"{len(data)}\\n")
        if data == ["hold"]:  # holds the stage until the test has queued its requests
            deadline = time.monotonic() + 30
            while not (HERE / "release").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return len(data)
'''


def queue_behind_a_held_call(server: Server, root: Path, rows: list[Any]) -> tuple[int, list[httpx.Response]]:
    """A "hold" request holds the stage while `rows` (one request each) queue behind it; then it
    is released. The number of model calls before the queued ones, and their answers."""

    def post(row: Any) -> httpx.Response:
        return httpx.post(server.url + "/predict", json=[row], headers=server.headers, timeout=60)

    with ThreadPoolExecutor(len(rows) + 1) as pool:
        hold = pool.submit(post, "hold")
        wait_for(lambda: len(calls(root)) == 2, timeout=20, what="the holding call to start")  # after the warm-up's
        before = len(calls(root))
        answers = [pool.submit(post, row) for row in rows]
        wait_for(lambda: metric(server, "conduit_predictions_running") >= len(rows) + 1, timeout=20,
                 what="every request to be admitted")
        time.sleep(1.0)  # from their slot to the batch queue: a parse and a hop each
        (root / "release").touch()
        assert hold.result().status_code == 200
        return before, [answer.result() for answer in answers]


def test_a_stage_whose_output_does_not_split_is_disabled_once_and_called_per_request(
        serve: Any, tmp_path: Path) -> None:
    """Breaks on purpose: every batch of such a model ran, was thrown away and each member ran
    again alone (8 queued requests, 9 calls), with no log line saying so."""
    config = project(tmp_path / "one-value", ONE_VALUE, """
name: one-value
models:
  - type: python
    file: model.py:Count
    batch: {max_size: 64, max_wait_ms: 0}
server: {max_concurrency: 4, timeout_s: 60}
tests:
  - name: warm
    json: ["w"]
""")
    server: Server = serve(config)
    root = config.parent
    before, answers = queue_behind_a_held_call(server, root, list(range(8)))
    assert [answer.status_code for answer in answers] == [200] * 8, [answer.text for answer in answers]
    assert calls(root)[before:] == [1] * 8, "each queued request made one call of its own row"
    with ThreadPoolExecutor(4) as pool:  # and from now on, whatever the load
        later = list(pool.map(lambda row: httpx.post(server.url + "/predict", json=[row], headers=server.headers,
                                                     timeout=60), range(4)))
    assert [answer.status_code for answer in later] == [200] * 4
    assert calls(root)[before:] == [1] * 12
    disabled = events(server, "batch_disabled")
    assert len(disabled) == 1, disabled
    assert disabled[0]["stage"].startswith("models[0]") and disabled[0]["reason"]


ECHO = '''
import time
from pathlib import Path

HERE = Path(__file__).parent
CALLS = HERE / "calls"

class Echo:
    def predict(self, data):
        with CALLS.open("a") as log:
            log.write(f"{len(data)}\\n")
        if data == ["hold"]:  # holds the stage until the test has queued its requests
            deadline = time.monotonic() + 30
            while not (HERE / "release").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        if "bad" in data:
            raise ValueError("a bad row")
        return [f"{row}!" for row in data]
'''

QUEUED = 16


def test_a_failed_batch_finds_its_culprit_by_bisection_and_is_counted(serve: Any, tmp_path: Path) -> None:
    """Breaks on purpose: a failed batch of N requests ran each member again alone (N + 1
    calls); and no counter said that batches failed."""
    config = project(tmp_path / "echo", ECHO, """
name: bisect
models:
  - type: python
    file: model.py:Echo
    batch: {max_size: 64, max_wait_ms: 0}
server: {max_concurrency: 4, max_queue: 64, timeout_s: 60}
tests:
  - name: warm
    json: ["w"]
""")
    server: Server = serve(config)
    root = config.parent

    rows = [f"r{index}" for index in range(QUEUED)]
    rows[5] = "bad"
    before, results = queue_behind_a_held_call(server, root, rows)
    statuses = [answer.status_code for answer in results]
    assert statuses[5] == 422 and statuses.count(200) == QUEUED - 1, statuses
    assert [answer.json()["result"] for answer in results if answer.status_code == 200] == \
        [[f"{row}!"] for row in rows if row != "bad"]
    made = calls(root)[before:]
    assert made[0] == QUEUED, f"the queued requests were not one batch (calls {made}): the test's premise"
    assert len(made) <= 1 + 2 * math.ceil(math.log2(QUEUED)), f"{len(made)} calls for one bad request: {made}"
    # The batch of 16 failed, then the halves holding the bad row: 8, 4 and 2 rows.
    assert metric(server, "conduit_batch_failures_total") == 4

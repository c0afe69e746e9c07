"""Adaptive batching (models[i].batch) served by `conduit serve` over real HTTP.

- An echo model (a `python` stage) answers each row with the row itself and the
  number of rows of the call it came in, so a client sees its own rows, in order,
  and whether they were batched. Rows "slow" hold the stage (the others queue
  behind it and go as one batch), "bad" make the model raise ValueError (422),
  "seen" return every row the model has been called with.
- The iris example (sklearn, numpy inputs) and the two-stage pipeline example
  (both stages batched) against the model's own answers.
"""

from __future__ import annotations

import json
import pickle
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, in_background, wait_for

ECHO = '''
"""Each row back, with the number of rows of the call that carried it."""
import threading
import time


class Echo:
    def load(self, project_dir):
        self.seen = []
        self.started = project_dir / "slow-started"

    def predict(self, data):
        if "seen" in data:
            return [list(self.seen) for _ in data]
        self.seen.extend(row for row in data if isinstance(row, list))
        if "bad" in data:
            raise ValueError("a bad row")
        if "slow" in data:
            self.started.touch()  # the test waits for this: the stage is busy now
            time.sleep(SLOW)
        time.sleep(0.02)  # a model call that costs something: requests pile up behind it
        return [{"row": row, "calls_rows": len(data)} for row in data]
'''

CONFIG = """
name: batch-echo
models:
  - type: python
    file: model.py:Echo
    batch: {max_size: 64, max_wait_ms: 0}
server: {max_concurrency: 4, max_queue: 256, timeout_s: TIMEOUT}
tests:
  - name: one
    json: [[0, 0]]
"""


PROJECTS: dict[str, Path] = {}  # server URL → its project folder


def echo_project(root: Path, slow_s: float, timeout_s: float) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.py").write_text(ECHO.replace("SLOW", repr(slow_s)))
    (root / "conduit.yaml").write_text(CONFIG.replace("TIMEOUT", repr(timeout_s)))
    return root / "conduit.yaml"


@pytest.fixture(scope="module")
def echo(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Server:
    config = echo_project(tmp_path_factory.mktemp("batch-echo"), slow_s=3.0, timeout_s=30)
    server: Server = serve(config)
    PROJECTS[server.url] = config.parent
    return server


@pytest.fixture(scope="module")
def hurried(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """Calls of "slow" outlast server.timeout_s."""
    config = echo_project(tmp_path_factory.mktemp("batch-hurried"), slow_s=2.0, timeout_s=1)
    server: Server = serve(config)
    PROJECTS[server.url] = config.parent
    return server


def post(server: Server, rows: list[Any], timeout: float = 30) -> httpx.Response:
    return httpx.post(server.url + "/predict", json=rows, headers=server.headers, timeout=timeout)


def prediction_lines(server: Server) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in server.logs().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == "prediction"]


def batch_calls(server: Server, more_than: int) -> float:
    """Model calls of the batched stage with more than `more_than` rows, from /metrics."""
    samples = {}
    for line in httpx.get(server.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("conduit_batch_size_bucket{") or line.startswith("conduit_batch_size_count{"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    count = next(v for k, v in samples.items() if k.startswith("conduit_batch_size_count"))
    at_most = next(v for k, v in samples.items() if f'le="{float(more_than)}"' in k)
    return count - at_most


def hold_stage(server: Server) -> Any:
    """A "slow" request holding the stage; wait until its call has begun."""
    started = PROJECTS[server.url] / "slow-started"
    started.unlink(missing_ok=True)
    thread, out = in_background(lambda: post(server, ["slow"]))
    wait_for(started.exists, timeout=20, what="the slow call to begin")
    return thread, out


def test_32_concurrent_clients_each_get_exactly_their_rows_in_order(echo: Server) -> None:
    def client(number: int) -> tuple[int, list[Any]]:
        rows = [[number, index] for index in range(number % 5 + 1)]  # 1 to 5 rows
        answer = post(echo, rows)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["prediction_ids"]) == len(rows)
        assert [item["row"] for item in body["result"]] == rows
        return number, body["result"]

    for _ in range(3):  # rounds: in each, the 32 arrive together
        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(client, range(32)))
    assert len(results) == 32
    # Requests did share calls: some call carried more rows than any one client sends.
    assert batch_calls(echo, more_than=8) >= 1
    sizes = [line["batch_size"] for line in prediction_lines(echo) if line["status"] == 200]
    assert sizes and max(sizes) > 5, "the log line of each prediction has its batch_size"


def test_at_low_load_a_request_goes_alone_at_once(echo: Server) -> None:
    started = time.perf_counter()
    answer = post(echo, [[7, 0], [7, 1]])
    assert answer.status_code == 200
    assert [item["calls_rows"] for item in answer.json()["result"]] == [2, 2]
    assert time.perf_counter() - started < 1.0


def test_a_bad_request_inside_a_batch_gets_its_422_and_the_others_200(echo: Server) -> None:
    holder, held = hold_stage(echo)
    before = batch_calls(echo, more_than=4)
    bodies: list[list[Any]] = [[[100 + n, 0]] for n in range(8)]
    bodies[3] = [[103, 0], "bad"]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda rows: post(echo, rows), bodies))
    holder.join(30)
    assert held[0].status_code == 200  # type: ignore[attr-defined]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [200, 200, 200, 422, 200, 200, 200, 200], [a.text for a in answers]
    assert answers[3].json()["error"]["code"] == "invalid_input"
    for rows, answer in zip(bodies, answers, strict=True):
        if answer.status_code == 200:
            assert [item["row"] for item in answer.json()["result"]] == rows
    # They queued behind "slow" and were first tried as one call of 9 rows.
    assert batch_calls(echo, more_than=4) > before


def test_queued_requests_that_time_out_get_504_and_leave_the_batch(hurried: Server) -> None:
    holder, _ = hold_stage(hurried)  # its call outlasts timeout_s: its request gets a 504 too
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda n: post(hurried, [[900 + n, 0]]), range(4)))
    assert [answer.status_code for answer in answers] == [504] * 4
    assert all(answer.json()["error"]["code"] == "timeout" for answer in answers)
    holder.join(30)
    # The stage is free again; the model never saw the rows of the requests that left.
    wait_for(lambda: post(hurried, [[1, 1]]).status_code == 200, timeout=10, what="the stage to be free")
    seen = post(hurried, ["seen"]).json()["result"][0]
    assert [1, 1] in seen
    assert not any(row[0] >= 900 for row in seen)


def test_iris_numpy_batches_answer_like_the_model(serve: Any, examples: Path) -> None:
    iris = serve(examples / "iris" / "conduit.yaml")
    with (examples / "iris" / "model.pkl").open("rb") as handle:
        model = pickle.load(handle)
    flowers = [[5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]

    def client(number: int) -> None:
        rows = [flowers[(number + index) % 4] for index in range(number % 6 + 1)]
        answer = post(iris, rows)
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"] == model.predict(rows).tolist()

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(client, range(96)))
    # A client whose rows do not fit the others' (3 numbers, not 4) fails alone.
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda n: post(iris, [[1.0, 2.0, 3.0]] if n == 5 else [flowers[0]]), range(16)))
    assert [a.status_code for a in answers] == [422 if n == 5 else 200 for n in range(16)]


def test_two_stage_flow_batches_each_stage(serve: Any, examples: Path) -> None:
    pipeline = serve(examples / "pipeline" / "conduit.yaml")
    flowers = {"setosa": [5.1, 3.5, 1.4, 0.2], "virginica": [6.7, 3.0, 5.2, 2.3]}

    def client(number: int) -> None:
        names = ["setosa" if (number + index) % 2 else "virginica" for index in range(number % 4 + 1)]
        answer = post(pipeline, [flowers[name] for name in names])
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"] == names

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(client, range(96)))
    text = httpx.get(pipeline.url + "/metrics", timeout=10).text
    stages = {line.split('stage="')[1].split('"')[0] for line in text.splitlines() if line.startswith("conduit_batch_size_count")}
    assert stages == {"0", "1"}

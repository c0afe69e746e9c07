"""Async predictions over real sockets: `Prefer: respond-async` (JSON and form) → 202,
`GET /predictions/{id}` until it ended, `POST /predictions/{id}/cancel` while queued and
while running, the API key, unknown ids, the async queue bound and timeout."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEY, Server, metric, start_server, wait_for

MODEL = '''
import time
from pathlib import Path


class Model:
    """data: [seconds, tag]; sleeps, then answers [tag, size of the first file]."""

    def load(self, project_dir):
        self.dir = Path(project_dir)

    def predict(self, data, files):
        seconds, tag = data
        if tag == "boom":
            raise RuntimeError("secret-internal-failure")
        if tag == "bad":
            raise ValueError("the input is refused")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.01)
            if tag == "watch" and (self.dir / "stop").exists():
                break
        (self.dir / "ran").open("a").write(tag + "\\n")
        return [[tag, len(files[0].read()) if files else 0]]
'''

PREFER = {"Authorization": API_KEY, "Prefer": "respond-async"}


def project(root: Path, **server: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.py").write_text(MODEL)
    settings = {"max_concurrency": 1, "max_queue": 4, **server}
    lines = "\n".join(f"  {key}: {json.dumps(value)}" for key, value in settings.items())
    (root / "conduit.yaml").write_text(
        f"name: asyncmodel\nmodels:\n  - type: python\n    file: model.py:Model\nserver:\n{lines}\n"
    )
    return root / "conduit.yaml"


@pytest.fixture()
def server(tmp_path: Path) -> Any:
    started = start_server(project(tmp_path / "proj"), tmp_path)
    yield started
    started.stop()


def submit(server: Server, data: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(server.url + "/predict", json=data, headers=PREFER, timeout=10, **kwargs)


def poll(server: Server, id_: str, until: tuple[str, ...] = ("succeeded", "failed", "canceled"),
         timeout: float = 30) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def ended() -> bool:
        seen.update(httpx.get(f"{server.url}/predictions/{id_}", headers={"Authorization": API_KEY}, timeout=5).json())
        return seen["status"] in until

    wait_for(ended, timeout, f"prediction {id_} to reach {until}")
    return seen


def test_json_async_prediction_answers_202_then_the_sync_envelope(server: Server) -> None:
    answer = submit(server, {"data": [1.0, "json"]})
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert set(accepted) == {"id", "status", "run_id", "urls"}
    assert accepted["status"] == "starting"
    assert accepted["urls"] == {"get": f"/predictions/{accepted['id']}", "cancel": f"/predictions/{accepted['id']}/cancel"}
    assert answer.headers["location"] == accepted["urls"]["get"]
    assert answer.headers["preference-applied"] == "respond-async"
    seen = poll(server, accepted["id"], ("processing",), 5)
    assert metric(server, "conduit_async_predictions_running") == 1
    assert seen["started_at"] and seen["completed_at"] is None and "result" not in seen
    done = poll(server, accepted["id"])
    assert done["status"] == "succeeded"
    assert done["result"] == [["json", 0]]
    assert done["run_id"] == accepted["run_id"]
    assert len(done["prediction_ids"]) == 1 and len(done["prediction_ids"][0]) == 32
    assert done["run_time_ms"] > 0 and done["completed_at"] >= done["started_at"] >= done["created_at"]


def test_form_async_prediction_keeps_its_upload_until_it_runs(server: Server) -> None:
    blocker = submit(server, [1.0, "first"]).json()
    upload = b"x" * (3 << 20)  # past the spool threshold: on disk while it waits
    answer = httpx.post(server.url + "/predict", headers=PREFER, timeout=10,
                        data={"data": json.dumps([0, "form"])}, files={"files": ("big.bin", upload)})
    assert answer.status_code == 202, answer.text
    assert poll(server, blocker["id"])["status"] == "succeeded"
    assert poll(server, answer.json()["id"])["result"] == [["form", len(upload)]]


def test_failures_read_as_the_sync_error_objects(server: Server) -> None:
    boom = submit(server, [0, "boom"]).json()
    bad = submit(server, [0, "bad"]).json()
    failed = poll(server, boom["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "model_error"
    assert "secret-internal-failure" not in json.dumps(failed)
    assert "secret-internal-failure" in server.logs()  # … the log line has it
    refused = poll(server, bad["id"])
    assert refused["status"] == "failed" and refused["error"]["code"] == "invalid_input"
    malformed = httpx.post(server.url + "/predict", content=b'{"data": [', timeout=10,
                           headers={**PREFER, "Content-Type": "application/json"})
    assert malformed.status_code == 202  # parsed when it runs, as a synchronous body is
    assert poll(server, malformed.json()["id"])["error"]["code"] == "bad_json"


def test_routes_need_the_key_and_unknown_ids_are_404(server: Server) -> None:
    accepted = submit(server, [0, "key"]).json()
    for call in (lambda h: httpx.get(f"{server.url}/predictions/{accepted['id']}", headers=h),
                 lambda h: httpx.post(f"{server.url}/predictions/{accepted['id']}/cancel", headers=h)):
        assert call({}).status_code == 401
        assert call({"Authorization": "wrong"}).json()["error"]["code"] == "unauthorized"
    assert httpx.post(server.url + "/predict", json=[0, "x"], headers={"Prefer": "respond-async"}).status_code == 401
    for call in (lambda: httpx.get(f"{server.url}/predictions/{'0' * 32}", headers={"Authorization": API_KEY}),
                 lambda: httpx.post(f"{server.url}/predictions/nope/cancel", headers={"Authorization": f"Bearer {API_KEY}"})):
        answer = call()
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"


def test_cancel_while_queued_never_runs_it(server: Server, tmp_path: Path) -> None:
    running = submit(server, [1.5, "running"]).json()
    queued = submit(server, [0, "queued"]).json()
    canceled = httpx.post(f"{server.url}{queued['urls']['cancel']}", headers={"Authorization": API_KEY}).json()
    assert canceled["status"] == "canceled" and canceled["completed_at"]
    assert poll(server, running["id"])["status"] == "succeeded"
    time.sleep(0.5)
    assert poll(server, queued["id"])["status"] == "canceled"
    ran = (tmp_path / "proj" / "ran").read_text().split()
    assert ran == ["running"]
    again = httpx.post(f"{server.url}{queued['urls']['cancel']}", headers={"Authorization": API_KEY})
    assert again.status_code == 200 and again.json()["status"] == "canceled"  # already ended: unchanged


def test_cancel_while_running_frees_the_slot(server: Server, tmp_path: Path) -> None:
    running = submit(server, [30, "watch"]).json()
    poll(server, running["id"], ("processing",), 10)
    canceled = httpx.post(f"{server.url}{running['urls']['cancel']}", headers={"Authorization": API_KEY}).json()
    assert canceled["status"] == "canceled"
    (tmp_path / "proj" / "stop").write_text("")  # the model's own way to end early
    after = submit(server, [0, "after"]).json()
    assert poll(server, after["id"], timeout=10)["status"] == "succeeded"
    assert poll(server, running["id"])["status"] == "canceled"  # its late end changes nothing
    assert "result" not in poll(server, running["id"])


def test_a_finished_prediction_cannot_be_canceled(server: Server) -> None:
    done = submit(server, [0, "done"]).json()
    assert poll(server, done["id"])["status"] == "succeeded"
    after = httpx.post(f"{server.url}{done['urls']['cancel']}", headers={"Authorization": API_KEY}).json()
    assert after["status"] == "succeeded" and after["result"] == [["done", 0]]


def test_async_queue_bound_and_timeout(tmp_path: Path) -> None:
    server = start_server(project(tmp_path / "proj", async_max_queue=2, async_timeout_s=1.0), tmp_path)
    try:
        first = submit(server, [3, "long"]).json()  # runs, and passes async_timeout_s
        poll(server, first["id"], ("processing",), 5)
        waiting = [submit(server, [0, f"w{i}"]) for i in range(2)]
        assert [w.status_code for w in waiting] == [202, 202]
        refused = submit(server, [0, "over"])
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "overloaded"
        timed_out = poll(server, first["id"])
        assert timed_out["status"] == "failed" and timed_out["error"]["code"] == "timeout"
        # the two waiting ones waited past their own async_timeout_s too (the slot was held)
        for w in waiting:
            assert poll(server, w.json()["id"])["error"]["code"] == "timeout"
        # a synchronous request is not held up by any of it once the slot is back
        assert httpx.post(server.url + "/predict", json=[0, "sync"], headers={"Authorization": API_KEY},
                          timeout=10).json()["result"] == [["sync", 0]]
    finally:
        server.stop()


def test_results_expire_after_the_ttl_and_the_count_bound(tmp_path: Path) -> None:
    server = start_server(project(tmp_path / "proj", async_ttl_s=4.0, async_max_results=2), tmp_path)
    try:
        ids = [submit(server, [0, f"r{i}"]).json()["id"] for i in range(3)]
        poll(server, ids[2], timeout=10)  # one at a time (max_concurrency 1): the last ends last
        codes = [httpx.get(f"{server.url}/predictions/{i}", headers={"Authorization": API_KEY}).status_code for i in ids]
        assert codes == [404, 200, 200]  # the oldest went first
        time.sleep(4.5)
        assert httpx.get(f"{server.url}/predictions/{ids[2]}", headers={"Authorization": API_KEY}).status_code == 404
    finally:
        server.stop()

"""Exactly one run per async prediction with the Redis store: two `conduit serve` processes
on one real redis-server, Redis paused (`CLIENT PAUSE … ALL`) past the lease while a
holder waits for its slot."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from conftest import API_KEY, Server, in_background, redis_server, start_server, wait_for
from test_webhook_targets import SECRET, Receiver

MODEL = '''
import os
import signal
import time
from pathlib import Path


class Model:
    def load(self, project_dir):
        self.dir = Path(project_dir)

    def predict(self, data):
        seconds, tag = data
        with (self.dir / "starts").open("a") as starts:  # one line per start of the model
            starts.write(f"{tag} {os.getpid()}\\n")
        if tag == "die":
            os.kill(os.getpid(), signal.SIGKILL)  # the process dies mid-prediction
        time.sleep(seconds)
        return [tag]
'''


def project(root: Path, redis_url: str, **server: Any) -> Path:
    root.mkdir(parents=True)
    (root / "model.py").write_text(MODEL)
    settings = {"max_concurrency": 1, "async_store": redis_url, **server}
    lines = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in settings.items())
    (root / "conduit.yaml").write_text(f"name: once\nmodels:\n  - type: python\n    file: model.py:Model\nserver:\n{lines}")
    return root / "conduit.yaml"


def starts(root: Path) -> list[tuple[str, int]]:
    path = root / "starts"
    lines = path.read_text().split("\n") if path.exists() else []
    return [(tag, int(pid)) for tag, pid in (line.split() for line in lines if line)]


def predict(server: Server, data: Any) -> httpx.Response:
    return httpx.post(server.url + "/predict", json=data, headers={"Authorization": API_KEY}, timeout=60)


def submit(server: Server, data: Any) -> str:
    answer = httpx.post(server.url + "/predict", json=data, timeout=30,
                        headers={"Authorization": API_KEY, "Prefer": "respond-async"})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def prediction(server: Server, id_: str) -> dict[str, Any]:
    return dict(httpx.get(f"{server.url}/predictions/{id_}", headers={"Authorization": API_KEY}, timeout=30).json())


def status(server: Server, id_: str) -> str | None:
    """Its status; None when the worker that took the GET died under it (the test kills workers)."""
    try:
        return str(prediction(server, id_)["status"])
    except httpx.TransportError:
        return None


def test_every_prediction_started_once_though_redis_stalled_while_its_holder_waited(tmp_path: Path) -> None:
    """A's dispatcher takes work while Redis is paused and a synchronous request then takes
    A's only slot: A holds a prediction while it waits for its slot, and Redis is paused
    again, past the lease. Fails before the change: A never renewed the lease of work
    waiting for a slot (and renewed with `SET … XX`, which cannot survive a lapse), so B
    reaped it and ran it, and A's START accepted a second holder: two starts."""
    root = tmp_path / "proj"
    with redis_server(tmp_path / "redis") as url:
        store = redis.Redis.from_url(url)
        config = project(root, url)
        a = start_server(config, tmp_path)
        b = start_server(config, tmp_path)
        try:
            sync1, _ = in_background(lambda: predict(a, [4, "sync1"]))  # A's slot, until just after the pause
            in_background(lambda: predict(b, [10, "syncB"]))  # B's slot, past the pause
            wait_for(lambda: {"sync1", "syncB"} <= {tag for tag, _ in starts(root)}, 10, "both slots taken")
            # queued (no slot is free); long enough that a second holder would start one while it runs
            ids = [submit(a, [5, f"w{i}"]) for i in range(3)]
            paused = time.monotonic()
            store.client_pause(8000, all=True)  # past the lease (5 s)
            sync1.join(20)  # A's slot is free: its dispatcher takes work, and waits on Redis
            time.sleep(0.5)
            sync2, _ = in_background(lambda: predict(a, [15, "sync2"]))  # takes A's slot first
            wait_for(lambda: "sync2" in {tag for tag, _ in starts(root)}, 5, "sync2 to hold A's slot")
            assert time.monotonic() - paused < 7, "the test lost its timing: Redis was unpaused too early"
            # Redis answers again at +8 s: A holds a prediction and waits for its slot (sync2, to +19 s)
            time.sleep(max(0.0, paused + 11 - time.monotonic()))
            store.client_pause(6000, all=True)  # past the lease again, while A still waits
            for id_ in ids:
                wait_for(lambda id_=id_: prediction(b, id_)["status"] == "succeeded", 60, f"{id_} to succeed")
            sync2.join(30)
            time.sleep(1.0)
            ran = [(tag, pid) for tag, pid in starts(root) if tag.startswith("w")]
            assert Counter(tag for tag, _ in ran) == {"w0": 1, "w1": 1, "w2": 1}, ran
            assert a.process.pid in {pid for _, pid in ran}, "A ran none: it never held work while it waited"
            assert sorted(prediction(a, id_)["result"][0] for id_ in ids) == ["w0", "w1", "w2"]
        finally:
            a.stop()
            b.stop()


def test_a_prediction_that_kills_its_process_ends_after_three_starts(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The model kills its own process on one input (two workers on the Redis store: the
    supervisor starts a new one each time): that prediction is started exactly
    server.async_max_attempts = 3 times, then ends `failed` with `attempts_exhausted` and its
    `completed` webhook is delivered, while another prediction succeeds. Fails before the change: the prediction went back to the
    queue each time, with no count, and crash-looped every worker for async_timeout_s."""
    root = tmp_path / "proj"
    with redis_server(tmp_path / "redis") as url:
        monkeypatch.setenv("CONDUIT_WEBHOOK_SECRET", SECRET)
        receiver = Receiver()
        server = start_server(project(root, url, workers=2, webhook_allowed_hosts=["127.0.0.1"]), tmp_path)
        try:
            doomed = submit(server, {"data": [0, "die"], "webhook": receiver.url})
            fine = submit(server, [0, "fine"])
            wait_for(lambda: status(server, fine) == "succeeded", 60, "the other prediction")
            wait_for(lambda: status(server, doomed) == "failed", 90, "the doomed one to fail")
            ended = prediction(server, doomed)
            assert ended["error"]["code"] == "attempts_exhausted", ended
            assert ended["run_id"] and ended["error"]["message"]
            assert [tag for tag, _ in starts(root)].count("die") == 3
            assert prediction(server, fine)["result"] == ["fine"]
            died = [pid for tag, pid in starts(root) if tag == "die"]
            assert len(set(died)) == 3 and server.process.pid not in died  # three workers, never the supervisor
            wait_for(lambda: len(receiver.deliveries) >= 1, 20, "the completed webhook")
            assert [(d["id"], d["status"], d["error"]["code"]) for d in receiver.deliveries] == [
                (doomed, "failed", "attempts_exhausted")]
        finally:
            server.stop()
            receiver.close()

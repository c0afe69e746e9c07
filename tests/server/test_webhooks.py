"""Webhooks of async predictions, delivered to a real receiver on 127.0.0.1 that checks
every signature with `standardwebhooks` and answers 500 to the first two deliveries;
100 predictions submitted at once against the async queue bound, each accepted one
delivered exactly once; a receiver that never answers holds up nothing."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEY, Server, start_server, wait_for
from standardwebhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"conduit-test-webhook-secret-0123").decode()

MODEL = '''
import time


class Model:
    def predict(self, data):
        seconds, tag = data
        time.sleep(seconds)
        return [tag]
'''


class Receiver:
    """A webhook receiver: verifies, records, and fails the first `fail_first` deliveries."""

    def __init__(self, fail_first: int = 0, delay_s: float = 0.0) -> None:
        self.fail_first = fail_first
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.deliveries: list[dict[str, Any]] = []  # every request, verified or not
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                try:
                    payload = Webhook(SECRET).verify(body, dict(self.headers.items()))
                    verified = True
                except Exception:
                    payload, verified = json.loads(body), False
                with receiver.lock:
                    code = 500 if len(receiver.deliveries) < receiver.fail_first else 200
                    receiver.deliveries.append({"id": self.headers["webhook-id"], "payload": payload,
                                                "verified": verified, "code": code})
                time.sleep(receiver.delay_s)  # a slow receiver: the delivery is seen, its answer waits
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self) -> list[dict[str, Any]]:
        with self.lock:
            return [d for d in self.deliveries if d["code"] == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    made = Receiver(fail_first=2)
    yield made
    made.close()


def project(root: Path, **server: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.py").write_text(MODEL)
    # the receivers listen on 127.0.0.1, which a webhook may reach only when it is listed
    settings = {"max_concurrency": 2, "webhook_allowed_hosts": ["127.0.0.1"], **server}
    lines = "\n".join(f"  {key}: {json.dumps(value)}" for key, value in settings.items())
    (root / "conduit.yaml").write_text(
        f"name: hooked\nmodels:\n  - type: python\n    file: model.py:Model\nserver:\n{lines}\n")
    return root / "conduit.yaml"


@pytest.fixture()
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("CONDUIT_WEBHOOK_SECRET", SECRET)
    started = start_server(project(tmp_path / "proj"), tmp_path)
    yield started
    started.stop()


def post(server: Server, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    return httpx.post(server.url + "/predict", headers={"Authorization": API_KEY, **(headers or {})}, timeout=30,
                      **kwargs)


def test_every_event_is_signed_retried_past_500s_and_in_order(server: Server, receiver: Receiver) -> None:
    answer = post(server, json={"data": [0.3, "hooked"], "webhook": receiver.url,
                                "webhook_events_filter": ["start", "output", "completed"]})
    assert answer.status_code == 202, answer.text  # naming a webhook makes it async
    id_ = answer.json()["id"]
    wait_for(lambda: len(receiver.accepted()) == 3, 30, "three events delivered")
    assert all(d["verified"] for d in receiver.deliveries), receiver.deliveries
    assert [d["code"] for d in receiver.deliveries] == [500, 500, 200, 200, 200]
    # the two refused tries were the same message (same webhook-id), tried again
    assert len({d["id"] for d in receiver.deliveries[:3]}) == 1
    events = [d["payload"] for d in receiver.accepted()]
    assert [e["status"] for e in events] == ["processing", "processing", "succeeded"]
    assert "result" not in events[0] and events[1]["result"] == ["hooked"]
    assert events[2]["id"] == id_ and events[2]["result"] == ["hooked"] and events[2]["completed_at"]
    retried = [json.loads(line) for line in server.logs().splitlines()
               if line.startswith("{") and '"webhook"' in line and '"retrying"' in line]
    assert [r["attempt"] for r in retried] == [1, 2] and all(r["problem"] == "answered 500" for r in retried)
    time.sleep(0.5)
    assert len(receiver.deliveries) == 5  # nothing more


def test_form_field_default_filter_and_the_originals_webhook_endpoint(server: Server, receiver: Receiver) -> None:
    receiver.fail_first = 0
    form = post(server, files=[("data", (None, json.dumps([0, "form"]))), ("webhook", (None, receiver.url))])
    original = post(server, json={"data": [0, "original"], "webhook_endpoint": receiver.url})
    assert form.status_code == original.status_code == 202
    wait_for(lambda: len(receiver.accepted()) == 2, 20, "two completed events")
    time.sleep(0.5)
    payloads = {d["payload"]["id"]: d["payload"] for d in receiver.accepted()}
    assert len(receiver.deliveries) == 2  # completed only, by default
    assert payloads[form.json()["id"]]["result"] == ["form"]
    assert payloads[original.json()["id"]]["result"] == ["original"]


def test_bad_webhooks_are_400(server: Server) -> None:
    for body in ({"data": [0, "x"], "webhook": "ftp://example.com/"},
                 {"data": [0, "x"], "webhook": "http://127.0.0.1:9/", "webhook_events_filter": ["finished"]}):
        answer = post(server, json=body)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_webhook"


def test_without_a_secret_webhooks_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONDUIT_WEBHOOK_SECRET", raising=False)
    server = start_server(project(tmp_path / "proj"), tmp_path)
    try:
        answer = post(server, json={"data": [0, "x"], "webhook": "http://127.0.0.1:9/"})
        assert answer.status_code == 400
        assert "CONDUIT_WEBHOOK_SECRET" in answer.json()["error"]["message"]
        assert post(server, json=[0, "plain"], headers={"Prefer": "respond-async"}).status_code == 202
    finally:
        server.stop()


def test_a_hundred_at_once_each_accepted_delivered_exactly_once_or_429(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> None:
    monkeypatch.setenv("CONDUIT_WEBHOOK_SECRET", SECRET)
    server = start_server(project(tmp_path / "proj", async_max_queue=20), tmp_path)
    try:
        def submit(i: int) -> httpx.Response:
            return post(server, json={"data": [0.1, f"p{i}"], "webhook": receiver.url})

        with ThreadPoolExecutor(100) as pool:
            answers = list(pool.map(submit, range(100)))
        codes = [a.status_code for a in answers]
        assert set(codes) <= {202, 429}, codes
        accepted = {a.json()["id"]: i for i, a in enumerate(answers) if a.status_code == 202}
        assert 20 <= len(accepted) < 100 and codes.count(429) == 100 - len(accepted)
        wait_for(lambda: len(receiver.accepted()) >= len(accepted), 90, "every accepted prediction delivered")
        time.sleep(1.0)
        delivered = [d["payload"] for d in receiver.accepted()]
        assert all(d["verified"] for d in receiver.deliveries)
        assert sorted(p["id"] for p in delivered) == sorted(accepted)  # each exactly once, none refused
        assert all(p["status"] == "succeeded" and p["result"] == [f"p{accepted[p['id']]}"] for p in delivered)
    finally:
        server.stop()


def test_a_receiver_that_never_answers_holds_up_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_WEBHOOK_SECRET", SECRET)
    stuck = Receiver(delay_s=60)
    server = start_server(project(tmp_path / "proj", max_concurrency=1), tmp_path)
    try:
        for i in range(3):
            assert post(server, json={"data": [0, f"s{i}"], "webhook": stuck.url}).status_code == 202
        wait_for(lambda: len(stuck.deliveries) == 3, 20, "three deliveries under way")  # all at once, none waits
        # the only slot is free: synchronous and async predictions go on
        assert post(server, json=[0, "sync"]).json()["result"] == ["sync"]
        later = post(server, json=[0, "later"], headers={"Prefer": "respond-async"}).json()
        wait_for(lambda: httpx.get(f"{server.url}/predictions/{later['id']}", headers={"Authorization": API_KEY}
                                   ).json()["status"] == "succeeded", 10, "a later prediction")
        began = time.monotonic()
        server.process.terminate()
        assert server.process.wait(15) == 0
        assert time.monotonic() - began < 10  # shutdown drops the deliveries, never waits for them
        assert '"dropped"' in server.logs()
    finally:
        server.stop()
        stuck.close()

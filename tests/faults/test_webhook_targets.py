"""Webhook targets: a caller may not make the server POST to loopback, private,
link-local or unspecified addresses (its neighbours) unless server.webhook_allowed_hosts
lists them. Only 127.0.0.1 is ever connected to here: every other target is refused
before any connection."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEY, Server, start_server, wait_for
from standardwebhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"conduit-fault-webhook-secret-012").decode()

MODEL = '''
class Model:
    def predict(self, data):
        return data
'''


class Receiver:
    """A real webhook receiver on 127.0.0.1 that verifies and records every delivery."""

    def __init__(self) -> None:
        self.deliveries: list[dict[str, Any]] = []
        verifier = Webhook(SECRET)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["content-length"]))
                payload = verifier.verify(raw.decode(), dict(self.headers))  # raises if not signed right
                receiver.deliveries.append(payload)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Counting(ThreadingHTTPServer):
            def verify_request(self, request: Any, client_address: Any) -> bool:
                receiver.connections += 1
                return True

        self.connections = 0
        self.server = Counting(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, allowed: list[str]) -> Server:
    monkeypatch.setenv("CONDUIT_WEBHOOK_SECRET", SECRET)
    root = tmp_path / f"proj{len(allowed)}"
    root.mkdir()
    (root / "model.py").write_text(MODEL)
    (root / "conduit.yaml").write_text(
        "name: targets\nmodels:\n  - type: python\n    file: model.py:Model\n"
        + (f"server:\n  webhook_allowed_hosts: {json.dumps(allowed)}\n" if allowed else ""))
    return start_server(root / "conduit.yaml", tmp_path)


def post(server: Server, webhook: str) -> httpx.Response:
    return httpx.post(server.url + "/predict", json={"data": ["hello"], "webhook": webhook},
                      headers={"Authorization": API_KEY}, timeout=30)


def test_internal_targets_refused_and_an_allowed_one_delivered_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> None:
    """Fails before the change, which accepted every http(s) URL (202) and POSTed the signed
    document to it: here the loopback receiver would have got it."""
    server = serve(tmp_path, monkeypatch, [])
    try:
        port = receiver.url.split(":")[2].split("/")[0]
        refused = [receiver.url, "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::1]/",
                   "http://0.0.0.0/", f"http://localhost:{port}/hook", f"http://[::ffff:127.0.0.1]:{port}/hook",
                   "https://224.0.0.1/"]
        for url in refused:
            answer = post(server, url)
            assert answer.status_code == 400, (url, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "webhook_not_allowed", (url, error)
            assert "Traceback" not in answer.text
        time.sleep(1.0)  # anything sent would have arrived by now
        assert (receiver.connections, receiver.deliveries) == (0, [])
    finally:
        server.stop()

    allowed = serve(tmp_path, monkeypatch, ["127.0.0.1"])
    try:
        answer = post(allowed, receiver.url)
        assert answer.status_code == 202, answer.text
        wait_for(lambda: len(receiver.deliveries) >= 1, 20, "the allowed webhook to be delivered")
        time.sleep(1.0)
        assert len(receiver.deliveries) == 1  # exactly once, signed (the receiver verified it)
        delivered = receiver.deliveries[0]
        assert (delivered["id"], delivered["status"], delivered["result"]) == (answer.json()["id"], "succeeded",
                                                                              ["hello"])
    finally:
        allowed.stop()


def test_a_host_refused_at_delivery_is_never_connected_to(receiver: Receiver, capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    """A name that resolves to a refused address only by the time of delivery (DNS cannot be
    changed here, so the sender is given `localhost` directly, past the submit check): the
    delivery fails at once with a log line, and the receiver sees no connection. Fails
    before the change, whose sender (httpx) POSTed to any address."""
    from conduit_runtime.jobs.webhook_targets import Targets
    from conduit_runtime.jobs.webhooks import Webhooks, signer

    port = receiver.url.split(":")[2].split("/")[0]

    async def deliver() -> None:
        sign = signer(SECRET)
        assert sign is not None
        hooks = Webhooks(sign, Targets([]))
        hooks.send("p1", f"http://localhost:{port}/hook", "completed", b'{"id": "p1"}')
        await asyncio.wait_for(asyncio.gather(*hooks.tasks), 20)
        await hooks.close()

    asyncio.run(deliver())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(line["status"], line["attempt"]) for line in lines if line.get("event") == "webhook"] == [
        ("not_allowed", 1)]
    assert (receiver.connections, receiver.deliveries) == (0, [])

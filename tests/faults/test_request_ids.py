"""X-Request-ID in every log line of its request, against a real `conduit serve`: a sync
success, a 422, a 500, and an async prediction whose webhook is retried once (its
success line and the webhook's retry line), each carry the id the client sent; a hostile
id (quotes, backslashes, a forged field, a tab and non-ASCII bytes) leaves every log line
valid JSON with the id as one string value. Before this change no log line had a request_id."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEY, Server, read_answer, start_server, wait_for

SECRET = "whsec_" + base64.b64encode(b"conduit-test-webhook-secret-0123").decode()

MODEL = '''
class Model:
    def predict(self, data):
        if data == ["bad"]:
            raise ValueError("not this input")
        if data == ["boom"]:
            raise RuntimeError("the model broke")
        return data
'''


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 500 to its first delivery, 200 after."""

    def __init__(self) -> None:
        self.codes: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                code = 500 if not receiver.codes else 200
                receiver.codes.append(code)
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture()
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("CONDUIT_WEBHOOK_SECRET", SECRET)
    (tmp_path / "model.py").write_text(MODEL)
    (tmp_path / "conduit.yaml").write_text("name: ids\nmodels:\n  - type: python\n    file: model.py:Model\n"
                                           "server:\n  webhook_allowed_hosts: [127.0.0.1]\n")  # the receiver
    started = start_server(tmp_path / "conduit.yaml", tmp_path)
    yield started
    started.stop()


def lines(server: Server) -> list[dict[str, Any]]:
    """Every JSON log line (each must parse: a line that does not is a broken log)."""
    return [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]


def with_id(server: Server, request_id: str) -> list[dict[str, Any]]:
    return [line for line in lines(server) if line.get("request_id") == request_id]


def post(server: Server, data: Any, request_id: str, **extra: Any) -> httpx.Response:
    return httpx.post(server.url + "/predict", json={"data": [data], **extra}, timeout=30,
                      headers={"Authorization": API_KEY, "X-Request-ID": request_id})


def test_the_sent_request_id_is_in_every_line_of_its_request(server: Server) -> None:
    """Breaks on purpose: prediction lines (200, 422, 500), the async success line and the
    webhook's retry line had no request_id before this change."""
    for data, status in (("fine", 200), ("bad", 422), ("boom", 500)):
        assert post(server, data, f"req-{data}").status_code == status
        sent = f"req-{data}"
        wait_for(lambda: bool(with_id(server, sent)), 10, f"the line of {sent}")  # noqa: B023 - waited for here
        (line,) = with_id(server, sent)
        assert line["event"] == "prediction" and line["status"] == status, line
    assert "exception" in with_id(server, "req-boom")[0]  # the 500's line is the failure line with the traceback

    receiver = Receiver()
    try:
        answer = post(server, "later", "req-async", webhook=receiver.url)
        assert answer.status_code == 202, answer.text
        wait_for(lambda: receiver.codes == [500, 200], 30, "the webhook retried once, then delivered")
        wait_for(lambda: len(with_id(server, "req-async")) == 3, 10, "the async lines")
        events = sorted((line["event"], line.get("status")) for line in with_id(server, "req-async"))
        assert events == [("prediction", 200), ("prediction", 202), ("webhook", "retrying")], events
        hook = next(line for line in with_id(server, "req-async") if line["event"] == "webhook")
        assert hook["prediction_id"] == answer.json()["id"]
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def test_a_hostile_request_id_cannot_break_or_forge_a_log_line(server: Server) -> None:
    """Breaks on purpose: the id is the client's bytes; quoted by hand it would end the JSON
    string (a forged "status") or break the line."""
    # A tab is the one control character the HTTP parser lets through; \xff and \xe9 are obs-text.
    hostile = b'x"\\,"status":999,"forged":"\t\xff\xe9}'
    port = int(server.url.rsplit(":", 1)[1])
    for data, status in ((b'["fine"]', 200), (b'["bad"]', 422)):
        body = b'{"data": ' + data + b"}"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Authorization: " + API_KEY.encode() + b"\r\nX-Request-ID: " + hostile + b"\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            assert read_answer(sock)[0] == status
    sent = hostile.decode("latin-1")
    wait_for(lambda: len(with_id(server, sent)) == 2, 10, "both lines of the hostile id")
    assert sorted(line["status"] for line in with_id(server, sent)) == [200, 422]
    assert not any("forged" in line or line.get("status") == 999 for line in lines(server))

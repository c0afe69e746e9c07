"""`conduit_runtime.cancelled()` in a running prediction, over real sockets: true once
the client disconnected (a plain request or an event stream) or the request timed out;
false otherwise. Each model records in its project folder when and how it stopped."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, wait_for
from httpx_sse import connect_sse

MODELS = '''
import asyncio
import time
from pathlib import Path

from conduit_runtime import cancelled


class Loops:
    """Works until cancelled (30 s at most), then writes how many steps it took."""

    def load(self, project_dir):
        self.root = Path(project_dir)

    def predict(self, data):
        if data == ["quick"]:
            return [cancelled()]
        (self.root / "started.txt").write_text("started")
        for step in range(3000):
            if cancelled():
                (self.root / "stopped.txt").write_text(str(step))
                return ["stopped"]
            time.sleep(0.01)
        (self.root / "stopped.txt").write_text("never")
        return ["never cancelled"]


class AsyncLoops:
    def load(self, project_dir):
        self.root = Path(project_dir)

    async def predict(self, data):
        if data == ["quick"]:
            return [cancelled()]
        (self.root / "started.txt").write_text("started")
        for step in range(3000):
            if cancelled():
                (self.root / "stopped.txt").write_text(str(step))
                return ["stopped"]
            await asyncio.sleep(0.01)
        (self.root / "stopped.txt").write_text("never")
        return ["never cancelled"]


class Ticks:
    """A generator that would never end; when closed, writes what cancelled() said."""

    def load(self, project_dir):
        self.root = Path(project_dir)

    def predict(self, data):
        if data == ["quick"]:
            yield cancelled()
            return
        try:
            while True:
                time.sleep(0.02)
                yield "tick"
        finally:
            (self.root / "closed.txt").write_text(json.dumps(cancelled()))


class SlowChunk:
    """Its second chunk takes until the prediction is cancelled (30 s at most)."""

    def load(self, project_dir):
        self.root = Path(project_dir)

    def predict(self, data):
        if data == ["quick"]:
            yield cancelled()
            return
        yield "first"
        for step in range(3000):
            if cancelled():
                (self.root / "stopped.txt").write_text(str(step))
                return
            time.sleep(0.01)
        (self.root / "stopped.txt").write_text("never")
        yield "never cancelled"
'''

QUICK = '  - name: quick\n    json: ["quick"]\n    expect: {result: [false]}\n'


@pytest.fixture(scope="module")
def servers(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Server]:
    started = {}
    for name, cls, server in (("loops", "Loops", ""), ("async", "AsyncLoops", ""), ("ticks", "Ticks", ""),
                              ("timeout", "Loops", "server:\n  timeout_s: 1\n"),
                              ("slow-chunk", "SlowChunk", "server:\n  timeout_s: 2\n")):
        folder = tmp_path_factory.mktemp(name)
        (folder / "model.py").write_text("import json\n" + MODELS)
        (folder / "conduit.yaml").write_text(
            f"name: {name}\nmodels:\n  - type: python\n    file: model.py:{cls}\n{server}tests:\n{QUICK}")
        started[name] = serve(folder / "conduit.yaml")
        started[name].root = folder  # type: ignore[attr-defined]
    return started


def root(server: Server) -> Path:
    folder: Path = server.root  # type: ignore[attr-defined]
    return folder


def steps_to_stop(server: Server) -> int:
    stopped = root(server) / "stopped.txt"
    wait_for(lambda: stopped.exists() and stopped.read_text() != "", timeout=30, what="the model to stop")
    text = stopped.read_text()
    assert text != "never", "the model ran to its end: cancelled() never turned true"
    return int(text)


def leave_mid_run(server: Server) -> None:
    """A plain JSON request over a raw socket, closed once the model runs."""
    host, port = server.url.removeprefix("http://").split(":")
    body = b'["work"]'
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Authorization: {server.key}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        wait_for((root(server) / "started.txt").exists, timeout=10, what="the model to start")


@pytest.mark.parametrize("name", ["loops", "async"])
def test_cancelled_is_false_in_a_prediction_whose_client_waits(servers: dict[str, Server], name: str) -> None:
    server = servers[name]
    response = httpx.post(server.url + "/predict", json=["quick"], headers=server.headers, timeout=30)
    assert response.status_code == 200 and response.json()["result"] == [False]


@pytest.mark.parametrize("name", ["loops", "async"])
def test_a_client_that_disconnects_mid_run_stops_the_model(servers: dict[str, Server], name: str) -> None:
    """A sync model in a worker thread and an `async def` one on the loop both see it."""
    server = servers[name]
    leave_mid_run(server)
    assert steps_to_stop(server) < 1500  # it had 3,000 steps of 10 ms to go
    wait_for(lambda: '"status":499' in server.logs(), timeout=10, what="the 499 log line")


def test_a_request_past_timeout_s_is_cancelled(servers: dict[str, Server]) -> None:
    server = servers["timeout"]
    response = httpx.post(server.url + "/predict", json=["work"], headers=server.headers, timeout=30)
    assert response.status_code == 504 and response.json()["error"]["code"] == "timeout"
    assert steps_to_stop(server) < 1000  # about 100 steps (1 s) in, not 3,000


def test_an_event_stream_client_that_leaves_closes_the_generator_with_cancelled_true(
        servers: dict[str, Server]) -> None:
    server = servers["ticks"]
    with httpx.Client(timeout=30) as client, connect_sse(
        client, "POST", server.url + "/predict", json=["work"], headers=dict(server.headers)
    ) as source:
        for count, sse in enumerate(source.iter_sse(), start=1):
            assert sse.event == "output" and json.loads(sse.data) == "tick"
            if count == 3:
                break
    closed = root(server) / "closed.txt"
    wait_for(lambda: closed.exists() and closed.read_text() != "", timeout=10, what="the generator to be closed")
    assert json.loads(closed.read_text()) is True


def test_a_stream_past_timeout_s_cancels_the_chunk_being_made(servers: dict[str, Server]) -> None:
    """The error event comes at timeout_s, and the chunk that was being made sees cancelled()
    (closing the generator waits for that chunk: it would wait 30 s otherwise)."""
    server = servers["slow-chunk"]
    with httpx.Client(timeout=30) as client, connect_sse(
        client, "POST", server.url + "/predict", json=["work"], headers=dict(server.headers)
    ) as source:
        got = [(sse.event, json.loads(sse.data)) for sse in source.iter_sse()]
    assert got[0] == ("output", "first")
    assert got[1][0] == "error" and got[1][1]["error"]["code"] == "timeout" and len(got) == 2
    assert steps_to_stop(server) < 1000  # about 200 steps (2 s) in, not 3,000

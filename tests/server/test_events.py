"""`Accept: text/event-stream`: a chunked result as Server-Sent Events, read by a real
client (httpx-sse): `output` per chunk, then `completed` with the envelope, or `error`;
a client that leaves stops the generator."""

from __future__ import annotations

import json
import time
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


class Words:
    def predict(self, data):
        for word in ("Conduit ", "streams ", "text"):
            yield word


class Rows:
    async def predict(self, data):
        for i in range(3):
            await asyncio.sleep(0.01)
            yield {"chunk": i}


class Plain:
    def predict(self, data):
        return [len(data)]


class Breaks:
    def predict(self, data):
        yield "one"
        raise RuntimeError("secret-internal-failure")


class Endless:
    def load(self, project_dir):
        self.closed = Path(project_dir) / "closed.txt"

    def predict(self, data):
        try:
            while True:
                time.sleep(0.05)
                yield "tick"
        finally:
            self.closed.write_text("closed")
'''


@pytest.fixture(scope="module")
def servers(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Server]:
    started = {}
    for cls in ("Words", "Rows", "Plain", "Breaks", "Endless"):
        folder = tmp_path_factory.mktemp(cls.lower())
        (folder / "model.py").write_text(MODELS)
        warm = "json: [1]" if cls not in ("Breaks", "Endless") else "json: []\n    expect: {result: []}"
        config = f"name: {cls.lower()}\nmodels:\n  - type: python\n    file: model.py:{cls}\n"
        if cls in ("Breaks", "Endless"):  # their warm-up would fail or never end: no tests: example
            (folder / "conduit.yaml").write_text(config)
        else:
            (folder / "conduit.yaml").write_text(config + f"tests:\n  - name: one\n    {warm}\n")
        server = serve(folder / "conduit.yaml")
        server.root = folder  # type: ignore[attr-defined]
        started[cls] = server
    return started


def events(server: Server, data: Any = None) -> list[tuple[str, Any]]:
    with httpx.Client(timeout=30) as client, connect_sse(
        client, "POST", server.url + "/predict", json=data if data is not None else [1], headers=dict(server.headers)  # connect_sse adds its own headers to the dict
    ) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return [(sse.event, json.loads(sse.data)) for sse in source.iter_sse()]


def test_a_generator_streams_one_output_event_per_chunk(servers: dict[str, Server]) -> None:
    got = events(servers["Words"])
    assert got[:3] == [("output", "Conduit "), ("output", "streams "), ("output", "text")]
    name, envelope = got[3]
    assert name == "completed" and len(got) == 4
    assert envelope["result"] == ["Conduit streams text"]  # strings joined, as without events
    assert set(envelope) == {"result", "run_id", "run_time_ms", "prediction_ids"}


def test_an_async_generator_streams_too(servers: dict[str, Server]) -> None:
    got = events(servers["Rows"])
    assert got[:3] == [("output", {"chunk": 0}), ("output", {"chunk": 1}), ("output", {"chunk": 2})]
    assert got[3][0] == "completed" and got[3][1]["result"] == [{"chunk": 0}, {"chunk": 1}, {"chunk": 2}]


def test_a_result_that_is_not_chunked_is_one_completed_event(servers: dict[str, Server]) -> None:
    got = events(servers["Plain"], [1, 2, 3])
    assert [name for name, _ in got] == ["completed"] and got[0][1]["result"] == [3]


def test_without_the_header_the_chunks_come_in_the_envelope(servers: dict[str, Server]) -> None:
    """Every client still works: the chunks joined (one string when all are strings) or listed."""
    response = httpx.post(servers["Words"].url + "/predict", json=[1], headers=servers["Words"].headers, timeout=30)
    assert response.status_code == 200 and response.json()["result"] == ["Conduit streams text"]
    rows = httpx.post(servers["Rows"].url + "/predict", json=[1], headers=servers["Rows"].headers, timeout=30).json()
    assert rows["result"] == [{"chunk": 0}, {"chunk": 1}, {"chunk": 2}] and len(rows["prediction_ids"]) == 3


def test_a_failure_mid_stream_is_an_error_event_without_internals(servers: dict[str, Server]) -> None:
    got = events(servers["Breaks"])
    assert got[0] == ("output", "one")
    name, body = got[1]
    assert name == "error" and body["error"]["code"] == "model_error" and len(got) == 2
    assert "secret" not in json.dumps(body)
    wait_for(lambda: "secret-internal-failure" in servers["Breaks"].logs(), what="the log line")


def test_a_client_that_leaves_stops_the_generator(servers: dict[str, Server]) -> None:
    server = servers["Endless"]
    with httpx.Client(timeout=30) as client, connect_sse(
        client, "POST", server.url + "/predict", json=[1], headers=dict(server.headers)  # connect_sse adds its own headers to the dict
    ) as source:
        for ticks, sse in enumerate(source.iter_sse(), start=1):
            assert sse.event == "output"
            if ticks == 3:
                break
    started = time.monotonic()
    closed: Path = server.root / "closed.txt"  # type: ignore[attr-defined]
    wait_for(closed.exists, timeout=10, what="the generator to be closed")
    assert time.monotonic() - started < 10

"""`conduit test` with `stream: true` examples, against a real `conduit serve`: the
events are read (httpx-sse), the completed envelope is checked against the example's
expectation, and a stream that breaks the contract fails with a reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEY, Server

from conduit_build.cli import main
from conduit_build.contract.calls import CheckFailed
from conduit_build.contract.streams import joined_problem, read_stream

MODELS = '''
class Words:
    def predict(self, data):
        for word in ("Conduit ", "streams ", "text"):
            yield word


class Plain:
    def predict(self, data):
        return [len(data)]


class Breaks:
    def predict(self, data):
        yield "one"
        if data != ["warm"]:
            raise RuntimeError("secret-internal-failure")
'''

TESTS = {
    "Words": """
  - name: streamed
    json: [1]
    stream: true
    expect: {result: ["Conduit streams text"]}
  - name: collected
    json: [1]
    expect: {result: ["Conduit streams text"]}
  - name: wrong
    json: [1]
    stream: true
    expect: {result: ["something else"]}
""",
    "Plain": """
  - name: one-event
    json: [1, 2, 3]
    stream: true
    expect: {result: [3]}
""",
    "Breaks": """
  - name: warm
    json: ["warm"]
  - name: breaks
    json: [1]
    stream: true
""",
}


@pytest.fixture(scope="module")
def projects(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Server]]:
    started = {}
    for cls, tests in TESTS.items():
        folder = tmp_path_factory.mktemp(f"contract-{cls.lower()}")
        (folder / "model.py").write_text(MODELS)
        config = folder / "conduit.yaml"
        config.write_text(f"name: {cls.lower()}\nmodels:\n  - type: python\n    file: model.py:{cls}\ntests:{tests}")
        started[cls] = (config, serve(config))
    return started


def contract(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
             project: tuple[Path, Server]) -> tuple[int, dict[str, dict[str, Any]]]:
    """`conduit test --url URL --json` through the CLI's entry point; the checks by name."""
    config, server = project
    monkeypatch.setenv("CONDUIT_API_KEY", API_KEY)
    status = main(["test", "-f", str(config), "--url", server.url, "--repeat", "1", "--json"])
    report = json.loads(capsys.readouterr().out)
    return status, {check["name"]: check for check in report["checks"]}


def test_stream_examples_read_the_events_and_check_the_envelope(
        projects: dict[str, tuple[Path, Server]], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    status, checks = contract(capsys, monkeypatch, projects["Words"])
    for kind in ("json", "form"):
        streamed = checks[f"example streamed ({kind}, events)"]
        assert streamed["status"] == "pass", streamed
        assert streamed["reason"] == "200, 3 output events + completed, 1 row, as expected"
        assert checks[f"example collected ({kind})"]["status"] == "pass"
        wrong = checks[f"example wrong ({kind}, events)"]
        assert wrong["status"] == "fail" and "something else" in wrong["reason"]
    assert status == 1  # the wrong expectation fails the run
    passed = [name for name, check in checks.items() if check["status"] == "pass"]
    assert "X-Request-ID echoed" in passed and "latency" in passed


def test_a_result_that_is_not_chunked_is_one_completed_event(
        projects: dict[str, tuple[Path, Server]], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    status, checks = contract(capsys, monkeypatch, projects["Plain"])
    assert checks["example one-event (json, events)"]["reason"] == "200, 0 output events + completed, 1 row, as expected"
    assert status == 0, [c for c in checks.values() if c["status"] == "fail"]


def test_an_error_event_fails_the_example_with_its_code(
        projects: dict[str, tuple[Path, Server]], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    status, checks = contract(capsys, monkeypatch, projects["Breaks"])
    broken = checks["example breaks (json, events)"]
    assert status == 1 and broken["status"] == "fail"
    assert broken["reason"].startswith("the stream ended with an error event: model_error: ")
    assert checks["example warm (json)"]["status"] == "pass"


# -- the reading of a stream, on answers made here ---------------------------------------------


def answer(body: bytes, content_type: str = "text/event-stream; charset=utf-8") -> httpx.Response:
    return httpx.Response(200, headers={"content-type": content_type}, content=body)


ENVELOPE = {"result": ["ab"], "run_id": "x", "run_time_ms": 1, "prediction_ids": ["0" * 32]}


def test_read_stream_gives_the_envelope_and_the_chunks() -> None:
    body = (b'event: output\ndata: "a"\n\nevent: output\ndata: "b"\n\n'
            b"event: completed\ndata: " + json.dumps(ENVELOPE).encode() + b"\n\n")
    envelope, chunks = read_stream(answer(body))
    assert (envelope, chunks) == (ENVELOPE, ["a", "b"])
    assert joined_problem(envelope["result"], chunks) is None
    assert joined_problem(["a"], chunks) == "completed's result is not the 2 output chunks joined"
    assert joined_problem([{"x": 1}, {"x": 2}], [{"x": 1}, {"x": 2}]) is None


@pytest.mark.parametrize(("body", "content_type", "reason"), [
    (json.dumps(ENVELOPE).encode(), "application/json", "not an event stream"),
    (b"", "text/event-stream", "the event stream ended without an event"),
    (b"event: progress\ndata: 1\n\n", "text/event-stream", "unknown event 'progress'"),
    (b"event: output\ndata: {nope\n\n", "text/event-stream", "the data of an event 'output' is not JSON"),
    (b"event: output\ndata: 1\n\n", "text/event-stream", "expected output events then one completed"),
    (b"event: completed\ndata: {}\n\nevent: output\ndata: 1\n\n", "text/event-stream", "expected output events"),
])
def test_read_stream_says_what_is_wrong(body: bytes, content_type: str, reason: str) -> None:
    with pytest.raises(CheckFailed) as failed:
        read_stream(answer(body, content_type))
    assert failed.value.reason.startswith(reason)


def test_openapi_documents_the_event_stream_answer(projects: dict[str, tuple[Path, Server]]) -> None:
    _, server = projects["Words"]
    document = httpx.get(server.url + "/openapi.json", timeout=30).json()
    answers = document["paths"]["/predict"]["post"]["responses"]["200"]["content"]
    assert set(answers) == {"application/json", "text/event-stream"}
    assert "Accept: text/event-stream" in answers["text/event-stream"]["description"]

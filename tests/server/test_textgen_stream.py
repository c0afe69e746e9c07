"""`hf_pipeline` with `task: text-generation`, served by `conduit serve`: the text
streams as Server-Sent Events (read with httpx-sse), the same text comes in the
envelope without the header, and a client that leaves stops the generation.

The model is a tiny, randomly initialised GPT-2 with a byte-level BPE tokenizer
trained here on two sentences: nothing comes from the hub. Greedy decoding makes
its text the same on every run, so the server's text is compared with the
pipeline's own, run in this process on the same folder.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEY, Server, wait_for
from httpx_sse import connect_sse

from conduit_build.cli import main

PROMPT = "hello world"
GREEDY = {"max_new_tokens": 12, "do_sample": False}
# Long enough that a generation nobody stops holds the model for minutes (about 20 ms a
# token here under load, more as the sequence grows), so a quick answer after it proves it stopped.
ENDLESS = {"max_new_tokens": 4000, "min_new_tokens": 4000, "do_sample": False}

CONFIG = f"""
name: tiny-gpt
models:
  - type: hf_pipeline
    file: model
    options: {{task: text-generation}}
    max_new_tokens: 4000  # ENDLESS asks for that many
server:
  max_concurrency: 1
tests:
  - name: hello
    json: {{data: [{PROMPT!r}], parameters: {{max_new_tokens: 3, do_sample: false}}}}
  - name: streamed
    json: {{data: [{PROMPT!r}], parameters: {{max_new_tokens: 5, do_sample: false}}}}
    stream: true
"""


def make_tiny_gpt(folder: Path) -> None:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    sentences = ["Conduit streams tokens from a tiny model.", "hello world, the quick brown fox jumps"] * 5
    bpe.train_from_iterator(sentences, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    end = "<|endoftext|>"
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=end, bos_token=end, unk_token=end)
    torch.manual_seed(12)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=4200, n_embd=16, n_layer=1, n_head=2,
                        bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-gpt")
    make_tiny_gpt(root / "model")
    (root / "conduit.yaml").write_text(CONFIG)
    return root


@pytest.fixture(scope="module")
def server(serve: Any, project: Path) -> Server:
    started: Server = serve(project / "conduit.yaml", timeout=300)
    return started


@pytest.fixture(scope="module")
def pipeline_text(project: Path) -> Any:
    """What transformers' own pipeline generates for a prompt, in this process."""
    import transformers

    pipe = transformers.pipeline("text-generation", model=str(project / "model"))

    def text(prompt: str, **parameters: Any) -> str:
        return str(pipe(prompt, **parameters)[0]["generated_text"])

    return text


def events(server: Server, body: Any) -> list[tuple[str, Any]]:
    with httpx.Client(timeout=60) as client, connect_sse(
        client, "POST", server.url + "/predict", json=body, headers=dict(server.headers)
    ) as source:
        assert source.response.status_code == 200
        return [(sse.event, json.loads(sse.data)) for sse in source.iter_sse()]


def test_the_text_streams_as_output_events_then_completed(server: Server, pipeline_text: Any) -> None:
    got = events(server, {"data": [PROMPT], "parameters": GREEDY})
    names = [name for name, _ in got]
    assert names[-1] == "completed" and set(names[:-1]) == {"output"}
    pieces = [piece for _, piece in got[:-1]]
    assert len(pieces) >= 3 and all(isinstance(piece, str) and piece for piece in pieces)
    assert pieces[0] == PROMPT  # the pipeline's generated_text begins with the prompt
    envelope = got[-1][1]
    assert envelope["result"] == ["".join(pieces)]
    assert envelope["result"] == [pipeline_text(PROMPT, **GREEDY)]
    assert len(envelope["prediction_ids"]) == 1


def test_without_the_header_the_same_text_comes_in_the_envelope(server: Server, pipeline_text: Any) -> None:
    response = httpx.post(server.url + "/predict", json={"data": [PROMPT], "parameters": GREEDY},
                          headers=server.headers, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == [pipeline_text(PROMPT, **GREEDY)]


def test_return_full_text_false_streams_the_new_text_only(server: Server, pipeline_text: Any) -> None:
    parameters = {**GREEDY, "return_full_text": False}
    got = events(server, {"data": [PROMPT], "parameters": parameters})
    pieces = [piece for name, piece in got if name == "output"]
    assert pieces and not pieces[0].startswith(PROMPT)
    assert got[-1][1]["result"] == ["".join(pieces)] == [pipeline_text(PROMPT, **parameters)]


def test_several_prompts_get_the_pipelines_own_answer(server: Server) -> None:
    response = httpx.post(server.url + "/predict", json={"data": [PROMPT, "the fox"], "parameters": GREEDY},
                          headers=server.headers, timeout=60)
    assert response.status_code == 200, response.text
    rows = response.json()["result"]
    assert len(rows) == 2 and all(row[0]["generated_text"].startswith(p) for row, p in zip(rows, (PROMPT, "the fox"), strict=True))


def test_a_bad_generation_parameter_is_an_error_not_a_hang(server: Server) -> None:
    response = httpx.post(server.url + "/predict", json={"data": [PROMPT], "parameters": {"max_new_tokens": "many"}},
                          headers=server.headers, timeout=60)
    assert response.status_code in (422, 500) and "error" in response.json()


def quick_answer_s(server: Server) -> float:
    """Seconds a short generation takes to answer: it waits for the model (one at a time)."""
    started = time.monotonic()
    response = httpx.post(server.url + "/predict", json={"data": [PROMPT], "parameters": {"max_new_tokens": 3}},
                          headers=server.headers, timeout=120)
    assert response.status_code == 200, response.text
    return time.monotonic() - started


def test_an_event_stream_client_that_leaves_stops_the_generation(server: Server) -> None:
    with httpx.Client(timeout=60) as client, connect_sse(
        client, "POST", server.url + "/predict", json={"data": [PROMPT], "parameters": ENDLESS},
        headers=dict(server.headers),
    ) as source:
        for count, sse in enumerate(source.iter_sse(), start=1):
            assert sse.event == "output"
            if count == 5:
                break
    assert quick_answer_s(server) < 20  # the 4,000-token generation would hold the model for minutes


def test_a_plain_client_that_leaves_stops_the_generation(server: Server) -> None:
    """No events: the text is being collected for the envelope when the client leaves;
    the server notices the disconnect and cancelled() stops the generation."""
    left_before = server.logs().count('"status":499')
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps({"data": [PROMPT], "parameters": ENDLESS}).encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Authorization: {server.key}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(1.0)  # generating by now
    # Its log line is written when the prediction ends: only if the generation stopped.
    wait_for(lambda: server.logs().count('"status":499') > left_before, timeout=60,
             what="the log line of the request whose client left")
    assert quick_answer_s(server) < 20


def test_conduit_test_reads_the_stream_of_a_stream_example(server: Server, project: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_API_KEY", API_KEY)
    status = main(["test", "-f", str(project / "conduit.yaml"), "--url", server.url, "--repeat", "0", "--json"])
    checks = {check["name"]: check for check in json.loads(capsys.readouterr().out)["checks"]}
    assert status == 0, [check for check in checks.values() if check["status"] == "fail"]
    streamed = checks["example streamed (json, events)"]
    assert streamed["status"] == "pass" and streamed["reason"].startswith("200, ")
    assert "output events + completed, 1 row" in streamed["reason"]

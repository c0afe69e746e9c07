"""hf_pipeline request parameters against a real `conduit serve` of a tiny text-generation
pipeline made here (a randomly initialised GPT-2 and a byte-level BPE tokenizer trained on
two sentences: nothing from the hub). Before this change every parameter went straight
into the pipeline: `max_new_tokens` past the cap, `num_beams: 64`, `num_return_sequences:
1000` or any other argument of generate() ran, wedging generation for every caller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server

CAP = 16

CONFIG = f"""
name: tiny-gen
models:
  - type: hf_pipeline
    file: model
    options: {{task: text-generation}}
    max_new_tokens: {CAP}
"""


def make_tiny_gpt(folder: Path) -> None:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["hello world, a tiny model", "the quick brown fox"] * 5, vocab_size=300,
                            min_frequency=1, special_tokens=["<|endoftext|>"])
    end = "<|endoftext|>"
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=end, bos_token=end, unk_token=end)
    torch.manual_seed(3)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=16, n_layer=1, n_head=2,
                        bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="module")
def server(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Server:
    root = tmp_path_factory.mktemp("tiny-gen")
    make_tiny_gpt(root / "model")
    (root / "conduit.yaml").write_text(CONFIG)
    started: Server = serve(root / "conduit.yaml", timeout=300)
    return started


def ask(server: Server, parameters: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + "/predict", json={"data": ["hello world"], "parameters": parameters},
                      headers=server.headers, timeout=60)


def test_parameters_are_allow_listed_and_capped(server: Server) -> None:
    """Breaks on purpose: each refused request below ran in the pipeline (or failed as a 500)."""
    fine = ask(server, {"max_new_tokens": CAP, "do_sample": False, "num_beams": 2, "num_return_sequences": 2,
                        "return_full_text": False})
    assert fine.status_code == 200, fine.text
    for parameters, named in (({"max_new_tokens": CAP + 1}, "max_new_tokens"),
                              ({"max_new_tokens": 10**6}, "max_new_tokens"),
                              ({"min_new_tokens": CAP + 1}, "min_new_tokens"),
                              ({"max_new_tokens": "many"}, "max_new_tokens"),
                              ({"num_beams": 64}, "num_beams"),
                              ({"num_return_sequences": 1000}, "num_return_sequences"),
                              ({"max_new_tokens": 2, "max_length": 10**6}, "max_length"),
                              ({"output_scores": True}, "output_scores")):
        answer = ask(server, parameters)
        assert answer.status_code == 422, (parameters, answer.status_code, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "invalid_input" and repr(named) in error["message"], (parameters, error)
    streamed = httpx.post(server.url + "/predict", json={"data": ["hello"], "parameters": {"num_beams": 9}},
                          headers={**server.headers, "Accept": "text/event-stream"}, timeout=60)
    assert "num_beams" in streamed.text and "invalid_input" in streamed.text  # refused before any token
    assert ask(server, {"max_new_tokens": 3}).status_code == 200  # the server is still serving

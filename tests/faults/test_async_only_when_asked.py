"""Async only when asked (issue 19): `Prefer: respond-async`, or a `webhook` key at the top of
the parsed body. Before, a byte search for `"webhook` anywhere in a JSON object made the request
async: the word inside the data got a 202 and no result, although the client never asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEY, Server, start_server

MODEL = """
class Model:
    def predict(self, data):
        return [[data[1], 0]]
"""


@pytest.fixture()
def server(tmp_path: Path) -> Any:
    (tmp_path / "model.py").write_text(MODEL)
    (tmp_path / "conduit.yaml").write_text("name: asked\nmodels:\n  - type: python\n    file: model.py:Model\n")
    started = start_server(tmp_path / "conduit.yaml", tmp_path)
    yield started
    started.stop()


def test_only_a_top_level_webhook_makes_a_request_async(server: Server) -> None:
    """The word "webhook" inside the data, or a nested "webhook" key, is data: the answer is
    the synchronous envelope, not a 202 (the body is parsed once to tell). Fails before the
    change: 202 for the first body."""
    for body in ({"data": [0, 'the "webhook" word']},
                 {"data": [0, "nested"], "parameters": {"webhook": "http://example.invalid/"}}):
        answer = httpx.post(server.url + "/predict", json=body, headers={"Authorization": API_KEY}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"] == [[body["data"][1], 0]]
    null = httpx.post(server.url + "/predict", json={"data": [0, "null"], "webhook": None},
                      headers={"Authorization": API_KEY}, timeout=10)
    assert null.status_code == 200 and null.json()["result"] == [["null", 0]]

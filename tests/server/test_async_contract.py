"""`conduit test` examples with `async: true`: submitted with `Prefer: respond-async`,
polled at GET /predictions/{id}, and the ended prediction checked like an answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEY

from conduit_build.cli import main

MODEL = '''
import time


class Model:
    def predict(self, data):
        time.sleep(0.3)  # long enough that the first GET finds it still running
        if data == ["boom"]:
            raise RuntimeError("no")
        return [len(data)]
'''

CONFIG = """name: asynccontract
models:
  - type: python
    file: model.py:Model
tests:
  - name: sync-three
    json: [1, 2, 3]
    expect: {result: [3]}
  - name: async-two
    json: [1, 2]
    async: true
    expect: {result: [2]}
  - name: async-wrong
    json: [1]
    async: true
    expect: {result: [5]}
  - name: async-fails
    json: {data: ["boom"]}
    async: true
"""


def test_async_examples_are_submitted_polled_and_checked(tmp_path: Path, serve: Any,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model.py").write_text(MODEL)
    (tmp_path / "conduit.yaml").write_text(CONFIG)
    server = serve(tmp_path / "conduit.yaml")
    monkeypatch.setenv("CONDUIT_API_KEY", API_KEY)
    status = main(["test", "-f", str(tmp_path / "conduit.yaml"), "--url", server.url, "--repeat", "2", "--json"])
    report = json.loads(capsys.readouterr().out)
    checks = {check["name"]: check for check in report["checks"]}
    assert status == 1
    for kind in ("json", "form"):
        assert checks[f"example async-two ({kind})"]["status"] == "pass", checks[f"example async-two ({kind})"]
        assert checks[f"example async-two ({kind})"]["reason"].startswith("202, then succeeded, 1 row")
        assert checks[f"example async-wrong ({kind})"]["status"] == "fail"
        assert checks[f"example async-wrong ({kind})"]["reason"].startswith("result[0]: got 1")
        assert checks[f"example async-fails ({kind})"]["reason"].startswith("the prediction failed: model_error")
    failed = {name for name, check in checks.items() if check["status"] == "fail"}
    assert failed == {f"example async-{name} ({kind})" for name in ("wrong", "fails") for kind in ("json", "form")}
    assert '"status":202' in server.logs()

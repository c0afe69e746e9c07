"""Files in a result — bytes, a PIL image, a pathlib.Path — come back as data URLs (as
Cog returns them), and `conduit predict -o DIR` writes them to files."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import httpx
from conftest import API_KEY, Server
from PIL import Image

from conduit_build.cli import main
from conduit_build.seed.client import save_outputs
from conduit_runtime.wire.outputs import sniff

MODEL = '''
from pathlib import Path

from PIL import Image


class Painter:
    def load(self, project_dir):
        self.page = Path(project_dir) / "page.txt"
        self.page.write_text("a page of text")

    def predict(self, data):
        if data == ["missing"]:
            return [Path("/nonexistent/output.png")]
        image = Image.new("RGB", (3, 2), (255, 0, 0))
        return [{"image": image, "raw": b"%PDF-1.4 tiny", "page": self.page, "n": 1}]
'''


def painter(serve: Any, folder: Path) -> Server:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(MODEL)
    (folder / "conduit.yaml").write_text(
        "name: painter\nmodels:\n  - type: python\n    file: model.py:Painter\ntests:\n  - name: one\n    json: [1]\n")
    server: Server = serve(folder / "conduit.yaml")
    return server


def decode(url: str) -> tuple[str, bytes]:
    assert url.startswith("data:")
    media_type, _, encoded = url[5:].partition(";base64,")
    return media_type, base64.b64decode(encoded)


def test_files_in_a_result_are_data_urls(serve: Any, tmp_path: Path) -> None:
    server = painter(serve, tmp_path)
    response = httpx.post(server.url + "/predict", json=[1], headers=server.headers, timeout=30)
    assert response.status_code == 200, response.text
    row = response.json()["result"][0]
    media_type, content = decode(row["image"])
    assert media_type == "image/png"
    assert Image.open(io.BytesIO(content)).size == (3, 2)  # an image made in memory goes as PNG
    assert decode(row["raw"]) == ("application/pdf", b"%PDF-1.4 tiny")  # told by its first bytes
    assert decode(row["page"]) == ("text/plain", b"a page of text")  # told by the path's suffix
    assert row["n"] == 1


def test_an_output_path_that_is_not_there_is_a_500_without_internals(serve: Any, tmp_path: Path) -> None:
    server = painter(serve, tmp_path)
    response = httpx.post(server.url + "/predict", json=["missing"], headers=server.headers, timeout=30)
    assert response.status_code == 500 and response.json()["error"]["code"] == "model_error"
    assert "nonexistent" not in response.text
    assert "nonexistent" in server.logs()


def test_conduit_predict_writes_outputs_to_a_folder(serve: Any, tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    server = painter(serve, tmp_path / "project")
    monkeypatch.setenv("CONDUIT_API_KEY", API_KEY)
    out = tmp_path / "out"
    status = main(["predict", "-f", str(tmp_path / "project" / "conduit.yaml"), "--url", server.url,
                   "--json", "[1]", "-o", str(out)])
    assert status == 0
    row = json.loads(capsys.readouterr().out)["result"][0]
    assert Path(row["image"]).parent == out and Path(row["image"]).suffix == ".png"
    assert Image.open(row["image"]).size == (3, 2)
    assert Path(row["raw"]).read_bytes() == b"%PDF-1.4 tiny" and row["raw"].endswith(".pdf")
    assert Path(row["page"]).read_text() == "a page of text"
    assert row["n"] == 1


def test_save_outputs_leaves_other_strings_alone(tmp_path: Path) -> None:
    answer = {"result": ["data:nothing", "plain", {"x": "data:text/plain;base64,aGk="}], "run_id": "r"}
    saved = save_outputs(answer, tmp_path)
    assert saved["result"][:2] == ["data:nothing", "plain"]
    assert Path(saved["result"][2]["x"]).read_text() == "hi"
    assert saved["run_id"] == "r"


def test_sniff_knows_common_types() -> None:
    assert sniff(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "audio/wav"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff(b"hello") == "application/octet-stream"

"""Every model type of DESIGN §2, served by `conduit serve` over real HTTP.

Each project is made by `conduit init --type T` (which trains a small real
model with train.py), some with their hooks rewritten; one hand-written python
project takes (data, files). All projects are made, and all servers started,
once for this module, in parallel.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEY, Server, conduit

SETOSA = [5.1, 3.5, 1.4, 0.2]
VERSICOLOR = [6.4, 3.2, 4.5, 1.5]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]
TEXT = "Conduit serves models. It builds images."

INIT_TYPES = (
    "sklearn", "sklearn_classifier", "sklearn_preprocessor", "xgboost_classifier", "xgboost_regressor",
    "onnx", "torch", "spacy", "hf_pipeline", "python",
)

SPACY_HOOKS = '''
"""spaCy hooks: texts in, one JSON object per Doc out."""


def pre_process(data):
    return [str(text) for text in data]


def post_process(out, data):
    return [
        {"text": text, "sentences": [sent.text for sent in doc.sents], "tokens": [token.text for token in doc]}
        for doc, text in zip(out, data)
    ]
'''

FILES_CONFIG = """
name: python-files
models:
  - type: python
    file: model.py:FileModel
tests:
  - name: example
    json: [[1, 2]]
"""

FILES_MODEL = '''
"""A python model with predict(data, files); counts its loads in a file."""
import os
from pathlib import Path

import numpy as np


class FileModel:
    def __init__(self):
        self.predictions = 0

    def load(self, project_dir):
        self.project_dir = Path(project_dir)
        with open(self.project_dir / "loads.txt", "a") as log:
            log.write(f"{os.getpid()}\\n")

    def predict(self, data, files):
        self.predictions += 1
        seen = [
            {"name": f.name, "content_type": f.content_type, "position": f.tell(), "content": f.read().decode("latin-1")}
            for f in files
        ]
        rows = [
            {
                "doubled": np.asarray(row, dtype=np.float64) * 2,  # ndarray
                "total": np.float32(sum(row)),                     # numpy scalars
                "count": np.int64(len(row)),
                "positive": np.bool_(sum(row) > 0),
                "files": seen,
                "predictions": self.predictions,
                "project_dir": str(self.project_dir),
            }
            for row in data
        ]
        return rows or [{"files": seen, "predictions": self.predictions}]
'''


def make_project(root: Path, model_type: str) -> Path:
    directory = root / model_type
    made = conduit("init", "--type", model_type, str(directory))
    assert made.returncode == 0, made.stdout + made.stderr
    if model_type == "spacy":
        (directory / "hooks.py").write_text(SPACY_HOOKS)
    return directory


def make_files_project(root: Path) -> Path:
    directory = root / "python-files"
    directory.mkdir()
    (directory / "conduit.yaml").write_text(FILES_CONFIG)
    (directory / "model.py").write_text(FILES_MODEL)
    return directory


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, serve: Any) -> Iterator[dict[str, tuple[Path, Server]]]:
    """Every project, by name (the model type, or python-files), with its running server.
    Made and started in parallel, each server as soon as its project is ready;
    stopped after the module."""
    root = tmp_path_factory.mktemp("types")

    def make_and_serve(name: str) -> tuple[Path, Server]:
        directory = make_files_project(root) if name == "python-files" else make_project(root, name)
        server: Server = serve(directory / "conduit.yaml", timeout=300)  # generous: 11 start at once
        return directory, server

    slow_first = ("torch", "hf_pipeline", "spacy")
    names = (*slow_first, *[t for t in INIT_TYPES if t not in slow_first], "python-files")
    with ThreadPoolExecutor(4) as pool:
        both = dict(zip(names, pool.map(make_and_serve, names), strict=True))
    yield both
    for _, server in both.values():
        server.process.terminate()  # all at once; stop() then waits for each
    for _, server in both.values():
        server.stop()


@pytest.fixture(scope="module")
def projects(made: dict[str, tuple[Path, Server]]) -> dict[str, Path]:
    return {name: directory for name, (directory, _) in made.items()}


@pytest.fixture(scope="module")
def servers(made: dict[str, tuple[Path, Server]]) -> dict[str, Server]:
    return {name: server for name, (_, server) in made.items()}


def predict(server: Server, body: Any) -> dict[str, Any]:
    """POST JSON to /predict, check the 200 envelope, return it."""
    response = httpx.post(server.url + "/predict", json=body, headers=server.headers, timeout=30)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert set(answer) == {"result", "run_id", "run_time_ms", "prediction_ids"}
    assert len(answer["prediction_ids"]) == len(answer["result"])
    assert all(re.fullmatch(r"[0-9a-f]{32}", pid) for pid in answer["prediction_ids"])
    assert response.headers["x-request-id"] == answer["run_id"]
    return answer


def result(server: Server, body: Any) -> list[Any]:
    rows: list[Any] = predict(server, body)["result"]
    return rows


def argmax(row: list[float]) -> int:
    return max(range(len(row)), key=row.__getitem__)


def test_init_writes_a_project_for_every_type(projects: dict[str, Path]) -> None:
    """`conduit init --type T` writes conduit.yaml, hooks.py and (but for python) a trained model."""
    for model_type in INIT_TYPES:
        directory = projects[model_type]
        assert (directory / "conduit.yaml").is_file()
        assert (directory / "hooks.py").is_file()
        if model_type == "python":
            assert (directory / "model.py").is_file()
        else:
            assert (directory / "train.py").is_file()
            assert any(p.name.startswith("model") for p in directory.iterdir() if p.name != "model.py")


def test_every_server_is_ready(servers: dict[str, Server]) -> None:
    """Every type loads, warms up with its tests: example and answers /ready 200."""
    for name, server in servers.items():
        response = httpx.get(server.url + "/ready", timeout=5)
        assert response.status_code == 200, (name, response.text)


def test_sklearn_predicts_iris_classes(servers: dict[str, Server]) -> None:
    """sklearn calls .predict: setosa → 0, virginica → 2, one per row."""
    assert result(servers["sklearn"], [SETOSA, VIRGINICA]) == [0, 2]


def test_sklearn_accepts_the_object_body(servers: dict[str, Server]) -> None:
    """{"data": [...], "parameters": {}} is the same request as the bare list."""
    assert result(servers["sklearn"], {"data": [VIRGINICA], "parameters": {}}) == [2]


def test_sklearn_form_request(servers: dict[str, Server]) -> None:
    """The seed's form request (field data = JSON) answers like the JSON one."""
    server = servers["sklearn"]
    form = {"data": (None, json.dumps([SETOSA, VERSICOLOR]))}  # multipart, as curl -F sends it
    response = httpx.post(server.url + "/predict", files=form, headers=server.headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == [0, 1]


def test_sklearn_wrong_feature_count_is_422(servers: dict[str, Server]) -> None:
    """A row of 3 features is refused by the model as invalid input, no traceback."""
    server = servers["sklearn"]
    response = httpx.post(server.url + "/predict", json=[[1.0, 2.0, 3.0]], headers=server.headers, timeout=30)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"
    assert "Traceback" not in response.text


def test_sklearn_classifier_returns_probabilities(servers: dict[str, Server]) -> None:
    """sklearn_classifier calls .predict_proba: one row of 3 probabilities per input row."""
    rows = result(servers["sklearn_classifier"], [SETOSA, VERSICOLOR, VIRGINICA])
    assert len(rows) == 3
    assert all(len(row) == 3 and abs(sum(row) - 1) < 1e-6 for row in rows)
    assert [argmax(row) for row in rows] == [0, 1, 2]


def test_sklearn_preprocessor_transforms(servers: dict[str, Server], projects: dict[str, Path]) -> None:
    """sklearn_preprocessor calls .transform: the answer equals the scaler's own output."""
    with (projects["sklearn_preprocessor"] / "model.pkl").open("rb") as handle:
        scaler = pickle.load(handle)
    expected = scaler.transform([SETOSA, VIRGINICA]).tolist()
    rows = result(servers["sklearn_preprocessor"], [SETOSA, VIRGINICA])
    assert [len(row) for row in rows] == [4, 4]
    flat = [value for row in rows for value in row]
    assert flat == pytest.approx([value for row in expected for value in row])
    assert rows[0][0] == pytest.approx(-0.9007, abs=1e-3)


def test_xgboost_classifier_returns_probabilities(servers: dict[str, Server]) -> None:
    """xgboost_classifier (model.json) calls .predict_proba: 3 probabilities a row, right classes."""
    rows = result(servers["xgboost_classifier"], [SETOSA, VIRGINICA])
    assert [len(row) for row in rows] == [3, 3]
    assert all(abs(sum(row) - 1) < 1e-5 for row in rows)
    assert [argmax(row) for row in rows] == [0, 2]


def test_xgboost_regressor_matches_the_model(servers: dict[str, Server], projects: dict[str, Path]) -> None:
    """xgboost_regressor calls .predict: one number a row, equal to the model's own prediction."""
    from xgboost import XGBRegressor

    model = XGBRegressor()
    model.load_model(str(projects["xgboost_regressor"] / "model.json"))
    rows = [[0.03, 0.05, 0.06, 0.02], [-0.04, -0.04, -0.05, -0.03]]
    answer = result(servers["xgboost_regressor"], rows)
    assert answer == pytest.approx(model.predict(rows).tolist(), rel=1e-6)
    assert answer[0] != answer[1]


def test_onnx_feeds_a_list_to_the_first_input(servers: dict[str, Server]) -> None:
    """onnx: a list goes to the first input as float32; the result is the first output (labels)."""
    assert result(servers["onnx"], [SETOSA, VERSICOLOR, VIRGINICA]) == [0, 1, 2]


def test_torch_returns_tensor_rows_as_json(servers: dict[str, Server]) -> None:
    """torch (TorchScript .pt): JSON rows become a float tensor; the output tensor becomes lists."""
    rows = result(servers["torch"], [SETOSA, VIRGINICA])
    assert all(len(row) == 3 and abs(sum(row) - 1) < 1e-5 for row in rows)  # softmax
    assert [argmax(row) for row in rows] == [0, 2]


def test_spacy_post_hook_turns_docs_into_json(servers: dict[str, Server]) -> None:
    """spacy: a blank pipeline from a folder; the post hook makes JSON of each Doc."""
    rows = result(servers["spacy"], [TEXT, "One more."])
    assert rows[0] == {
        "text": TEXT,
        "sentences": ["Conduit serves models.", "It builds images."],
        "tokens": ["Conduit", "serves", "models", ".", "It", "builds", "images", "."],
    }
    assert rows[1]["sentences"] == ["One more."]


def test_hf_pipeline_classifies_text(servers: dict[str, Server]) -> None:
    """hf_pipeline: a tiny random text classifier from a folder; one label + score a text."""
    rows = result(servers["hf_pipeline"], ["i love this movie", "awful film"])
    assert len(rows) == 2
    for row in rows:
        assert row["label"] in {"NEGATIVE", "POSITIVE"}
        assert 0.0 <= row["score"] <= 1.0


def test_hf_pipeline_passes_parameters(servers: dict[str, Server]) -> None:
    """{"parameters": {"top_k": 2}} reaches pipe(x, **parameters): both labels for each text."""
    rows = result(servers["hf_pipeline"], {"data": ["i love this movie", "awful film"], "parameters": {"top_k": 2}})
    assert len(rows) == 2
    for row in rows:
        assert {item["label"] for item in row} == {"NEGATIVE", "POSITIVE"}
        assert sum(item["score"] for item in row) == pytest.approx(1.0, abs=1e-4)


def test_python_model_from_init(servers: dict[str, Server]) -> None:
    """python: the init skeleton's class, loaded once with load(project_dir), predict(data)."""
    assert result(servers["python"], [[1.0, 2.0], [3, 4]]) == [[2.0, 4.0], [6.0, 8.0]]


def test_python_model_coerces_numpy_outputs(servers: dict[str, Server]) -> None:
    """ndarray and numpy scalars (float32, int64, bool_) in a model's output come back as JSON."""
    row = result(servers["python-files"], [[1, 2, 3.5]])[0]
    assert row["doubled"] == [2.0, 4.0, 7.0]
    assert row["total"] == 6.5
    assert row["count"] == 3 and isinstance(row["count"], int)
    assert row["positive"] is True
    assert row["files"] == []


def test_python_model_with_files_over_form(servers: dict[str, Server], projects: dict[str, Path]) -> None:
    """predict(data, files) gets the uploads in body order, whatever their field names,
    at position 0 with the client's filename and Content-Type."""
    server = servers["python-files"]
    parts = [
        ("files", ("notes.txt", b"hello", "text/plain")),
        ("file1", ("pic.png", b"\x89PNG\r\n\x1a\n", "image/png")),
    ]
    response = httpx.post(
        server.url + "/predict", data={"data": "[[1, 1]]"}, files=parts, headers=server.headers, timeout=30
    )
    assert response.status_code == 200, response.text
    row = response.json()["result"][0]
    assert row["files"] == [
        {"name": "notes.txt", "content_type": "text/plain", "position": 0, "content": "hello"},
        {"name": "pic.png", "content_type": "image/png", "position": 0, "content": "\x89PNG\r\n\x1a\n"},
    ]
    assert row["project_dir"] == str(projects["python-files"].resolve())


def test_python_model_loads_once(servers: dict[str, Server], projects: dict[str, Path]) -> None:
    """The class is instantiated and load() called once per process, however many requests come."""
    server = servers["python-files"]
    counts = [result(server, [[1]])[0]["predictions"] for _ in range(3)]
    assert counts == sorted(counts) and len(set(counts)) == 3  # the same instance answers every time
    loads = (projects["python-files"] / "loads.txt").read_text().split()
    assert loads == [str(server.process.pid)]


def test_predict_needs_the_key(servers: dict[str, Server]) -> None:
    """No key is a 401; the key as 'Bearer <key>' is accepted like the bare key."""
    server = servers["onnx"]
    missing = httpx.post(server.url + "/predict", json=[SETOSA], timeout=10)
    assert missing.status_code == 401
    bearer = httpx.post(server.url + "/predict", json=[SETOSA], headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    assert bearer.status_code == 200


def test_one_prediction_log_line_per_request(servers: dict[str, Server]) -> None:
    """Each prediction logs one JSON line with its run_id and status."""
    server = servers["xgboost_classifier"]
    answer = predict(server, [SETOSA])
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("run_id") == answer["run_id"]]
    assert len(mine) == 1
    assert mine[0]["status"] == 200 and mine[0]["prediction_ids"] == answer["prediction_ids"]



TABULAR = ("sklearn", "sklearn_classifier", "sklearn_preprocessor", "xgboost_classifier", "xgboost_regressor",
           "onnx", "torch")


@pytest.mark.parametrize("model_type", TABULAR)
def test_wrong_feature_count_is_422_for_every_tabular_type(servers: dict[str, Server], model_type: str) -> None:
    """Rows of 3 features for a 4-feature model: the library's own refusal (scikit-learn's and
    XGBoost's ValueError, onnxruntime's INVALID_ARGUMENT, torch's shape error) is the client's
    422, with the library's words and no traceback or path."""
    server = servers[model_type]
    response = httpx.post(server.url + "/predict", json=[[1.0, 2.0, 3.0]], headers=server.headers, timeout=30)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert re.search(r"feature|shape|dimension|Expected|mat1", error["message"]), error["message"]
    assert "Traceback" not in response.text and 'File "' not in response.text and "site-packages" not in response.text


def test_hf_pipeline_under_concurrent_load(servers: dict[str, Server]) -> None:
    """A fast tokenizer is one Rust object that refuses a second caller ("Already borrowed"):
    the stage runs one call at a time, so 64 requests from 16 clients all succeed."""
    server = servers["hf_pipeline"]
    texts = [["i love this movie"], ["awful film", "great"], ["a long review " * 20]]

    def ask(i: int) -> httpx.Response:
        body = {"data": texts[i % 3], "parameters": {"truncation": True, "max_length": 8 + i % 5}}
        return httpx.post(server.url + "/predict", json=body, headers=server.headers, timeout=60)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(64)))
    assert [a.status_code for a in answers] == [200] * 64, next(a.text for a in answers if a.status_code != 200)
    assert [len(a.json()["result"]) for a in answers] == [len(texts[i % 3]) for i in range(64)]

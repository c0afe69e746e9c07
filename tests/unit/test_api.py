"""The Python API: Conduit.from_file(...).load().run(data, files=[...]), in-process.

Real models, made once for this module: a python model with hooks that look at
the files, a two-stage text flow (TfidfVectorizer → LogisticRegression, both
written with joblib.dump as .pkl), and an ONNX model with a float64 input.
"""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from conduit_build.seed.api import Conduit, PredictionError

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]

ECHO_CONFIG = """
name: api-echo
models:
  - type: python
    file: model.py:Echo
    hooks:
      pre: hooks.py:look
      post: hooks.py:after
tests:
  - name: warm-up
    json: [[1]]
"""

ECHO_MODEL = '''
"""A python model with predict(data, files); counts instances and loads."""
import numpy as np


class Echo:
    instances = 0
    loads = 0

    def __init__(self):
        type(self).instances += 1

    def load(self, project_dir):
        type(self).loads += 1

    def predict(self, data, files):
        if "bad" in data["rows"]:
            raise ValueError("bad row")
        counts = {"instances": type(self).instances, "loads": type(self).loads}
        if not files:
            return [{"row": row, "half": np.float32(0.5), "seven": np.int64(7), **counts} for row in data["rows"]]
        return [
            {
                "pre": seen,
                "name": f.name,
                "content_type": f.content_type,
                "position": f.tell(),
                "content": f.read().decode("latin-1"),
                **counts,
            }
            for seen, f in zip(data["pre"], files)
        ]
'''

ECHO_HOOKS = '''
"""pre(data, files) reads every file to its end; post(out, data, files) checks where they stand."""


def look(data, files):
    pre = []
    for f in files:
        position = f.tell()
        pre.append({"name": f.name, "position": position, "size": len(f.read())})
    return {"rows": data, "pre": pre}


def after(out, data, files):
    for row, f in zip(out, files):
        row["post_position"] = f.tell()
        row["post_data"] = data
    return out
'''

TEXT_CONFIG = """
name: api-text
models:
  - type: sklearn_preprocessor
    file: tfidf.pkl
  - type: sklearn
    file: clf.pkl
tests:
  - name: warm-up
    json: ["good film"]
"""

ONNX_CONFIG = """
name: api-onnx
models:
  - type: onnx
    file: model.onnx
tests:
  - name: warm-up
    json: [[5.1, 3.5, 1.4, 0.2]]
"""

ONNX_DICT_CONFIG = """
name: api-onnx-dict
models:
  - type: onnx
    file: model.onnx
    hooks:
      pre: hooks.py:by_name
tests:
  - name: warm-up
    json: [[5.1, 3.5, 1.4, 0.2]]
"""

ONNX_HOOKS = '''
def by_name(data):
    """A dict feeds inputs by name."""
    return {"X": data}
'''


@pytest.fixture(scope="module")
def echo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("api-echo")
    (directory / "conduit.yaml").write_text(ECHO_CONFIG)
    (directory / "model.py").write_text(ECHO_MODEL)
    (directory / "hooks.py").write_text(ECHO_HOOKS)
    return directory


@pytest.fixture(scope="module")
def echo(echo_dir: Path) -> Conduit:
    """The echo project, loaded once for the module."""
    return Conduit.from_file(echo_dir / "conduit.yaml").load()


@pytest.fixture(scope="module")
def text_model(tmp_path_factory: pytest.TempPathFactory) -> Conduit:
    """TfidfVectorizer → LogisticRegression, both saved by joblib.dump under .pkl names
    (the second compressed): sparse matrices pass between the stages."""
    import joblib
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    directory = tmp_path_factory.mktemp("api-text")
    texts = ["good film", "great good movie", "i love it", "bad film", "awful bad movie", "i hate it"]
    labels = [1, 1, 1, 0, 0, 0]
    tfidf = TfidfVectorizer().fit(texts)
    clf = LogisticRegression(C=10).fit(tfidf.transform(texts), labels)
    joblib.dump(tfidf, directory / "tfidf.pkl")
    joblib.dump(clf, directory / "clf.pkl", compress=3)
    (directory / "conduit.yaml").write_text(TEXT_CONFIG)
    return Conduit.from_file(directory / "conduit.yaml").load()


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An iris classifier converted with a float64 input named X."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    directory = tmp_path_factory.mktemp("api-onnx")
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    graph = to_onnx(model, X[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    assert graph.graph.input[0].name == "X"
    (directory / "model.onnx").write_bytes(graph.SerializeToString())
    (directory / "conduit.yaml").write_text(ONNX_CONFIG)
    (directory / "dict.yaml").write_text(ONNX_DICT_CONFIG)
    (directory / "hooks.py").write_text(ONNX_HOOKS)
    return directory


def test_run_answers_with_the_server_envelope(echo: Conduit) -> None:
    """run() returns result, run_id (uuid4), run_time_ms and one 32-hex prediction id per row."""
    answer = echo.run([[1, 2], [3]])
    assert set(answer) == {"result", "run_id", "run_time_ms", "prediction_ids"}
    assert uuid.UUID(answer["run_id"]).version == 4
    assert isinstance(answer["run_time_ms"], float) and answer["run_time_ms"] >= 0
    assert len(answer["prediction_ids"]) == 2
    assert all(re.fullmatch(r"[0-9a-f]{32}", pid) for pid in answer["prediction_ids"])
    assert [row["row"] for row in answer["result"]] == [[1, 2], [3]]


def test_numpy_scalars_come_back_as_json_numbers(echo: Conduit) -> None:
    """np.float32 and np.int64 in a model's output are plain JSON numbers in the envelope."""
    row = echo.run([[1]])["result"][0]
    assert row["half"] == 0.5 and type(row["half"]) is float
    assert row["seven"] == 7 and type(row["seven"]) is int


def test_run_accepts_the_object_body(echo: Conduit) -> None:
    """{"data": [...], "parameters": {...}} is taken like the server's JSON object body."""
    assert [row["row"] for row in echo.run({"data": [[9]], "parameters": {"x": 1}})["result"]] == [[9]]


def test_model_loads_once(echo_dir: Path, echo: Conduit) -> None:
    """load() twice and many runs: the class was instantiated and load() called once."""
    echo.load()
    rows = [echo.run([[i]])["result"][0] for i in range(3)]
    assert {(row["instances"], row["loads"]) for row in rows} == {(1, 1)}


def test_files_as_paths_bytes_and_file_objects(echo: Conduit, tmp_path: Path) -> None:
    """Files given as a path, bytes, an open file (not at its start) and a BytesIO reach the
    hooks and model in order, at position 0, with .name (no folder) and .content_type."""
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"hello")
    picture = tmp_path / "pic.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\nrest")
    with picture.open("rb") as handle:
        handle.read(3)  # the API starts it from 0 anyway
        answer = echo.run([None], files=[notes, b"raw bytes", handle, io.BytesIO(b"in memory")])
        assert not handle.closed  # the caller's own file stays open
    rows = answer["result"]
    assert [(row["name"], row["content_type"]) for row in rows] == [
        ("notes.txt", "text/plain"),
        ("file1", "application/octet-stream"),
        ("pic.png", "image/png"),
        ("file3", "application/octet-stream"),
    ]
    assert [row["content"] for row in rows] == ["hello", "raw bytes", "\x89PNG\r\n\x1a\nrest", "in memory"]
    assert [row["pre"]["position"] for row in rows] == [0, 0, 0, 0]  # the pre hook got them at 0
    assert [row["pre"]["size"] for row in rows] == [5, 9, 12, 9]
    assert [row["position"] for row in rows] == [0, 0, 0, 0]  # and the model too, after the hook read them
    assert [row["post_position"] for row in rows] == [0, 0, 0, 0]  # and the post hook
    assert rows[0]["post_data"] == [None]  # post(out, data, files) gets the request's data


def test_files_as_a_path_string(echo: Conduit, tmp_path: Path) -> None:
    """A str path works like a Path; its name is the file's name without folders."""
    data = tmp_path / "sub" / "table.csv"
    data.parent.mkdir()
    data.write_text("1,2\n")
    row = echo.run([None], files=[str(data)])["result"][0]
    assert (row["name"], row["content_type"], row["content"]) == ("table.csv", "text/csv", "1,2\n")


def test_rejected_input_raises_prediction_error(echo: Conduit) -> None:
    """A model's ValueError is a PredictionError with the server's 422 status and code."""
    with pytest.raises(PredictionError) as caught:
        echo.run(["bad"])
    assert caught.value.status == 422
    assert caught.value.code == "invalid_input"


def test_data_must_be_a_list(echo: Conduit) -> None:
    """Data that is not a list is the server's 400 bad_shape."""
    with pytest.raises(PredictionError) as caught:
        echo.run("not a list")
    assert (caught.value.status, caught.value.code) == (400, "bad_shape")


def test_text_flow_passes_sparse_matrices_and_reads_joblib_pickles(text_model: Conduit) -> None:
    """Strings → TF-IDF (a sparse matrix) → classifier; models saved by joblib.dump as .pkl load."""
    assert text_model.run(["good great film", "awful bad film", "i love it"])["result"] == [1, 0, 1]


def test_onnx_list_goes_to_a_float64_input(onnx_dir: Path) -> None:
    """A list feeds the first input in the type it declares (here float64); a bare row is a table of one."""
    model = Conduit.from_file(onnx_dir / "conduit.yaml").load()
    assert model.run([SETOSA, VIRGINICA])["result"] == [0, 2]
    assert model.run(SETOSA)["result"] == [0]


def test_onnx_dict_feeds_inputs_by_name(onnx_dir: Path) -> None:
    """A pre hook returning {input_name: rows} feeds that input."""
    model = Conduit.from_file(onnx_dir / "dict.yaml").load()
    assert model.run([VIRGINICA, SETOSA])["result"] == [2, 0]


def test_results_are_plain_json(text_model: Conduit) -> None:
    """The envelope holds only JSON types (the model returned an ndarray of int64)."""
    result: Any = text_model.run(["good film"])["result"]
    assert result == [1] and type(result[0]) is int


def test_a_new_load_sees_edited_hooks(tmp_path: Path) -> None:
    """Edit hooks.py, then Conduit.from_file(...).load() again (the notebook loop): the edit is used."""
    (tmp_path / "conduit.yaml").write_text(
        "name: api-edit\nmodels:\n  - type: python\n    file: model.py:Same\n    hooks:\n      post: hooks.py:post\n"
    )
    (tmp_path / "model.py").write_text("class Same:\n    def predict(self, data):\n        return data\n")
    (tmp_path / "hooks.py").write_text("def post(out):\n    return ['before']\n")
    assert Conduit.from_file(tmp_path / "conduit.yaml").load().run([1])["result"] == ["before"]
    (tmp_path / "hooks.py").write_text("def post(out):\n    return ['after the edit']\n")
    assert Conduit.from_file(tmp_path / "conduit.yaml").load().run([1])["result"] == ["after the edit"]

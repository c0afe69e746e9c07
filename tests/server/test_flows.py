"""Flows of two stages served by `conduit serve` over real HTTP, with hooks of
every arity: pre(data), pre(data, files), post(out), post(out, data) and
post(out, data, files).

- torch flow: sklearn_preprocessor (a StandardScaler) → torch (a module saved
  with torch.save as net.pkl): the scaler's float64 ndarray is bridged to a
  float32 tensor, and the tensor out comes back as JSON.
- sklearn flow: sklearn_preprocessor (scaler.joblib) → sklearn (model.pkl) with
  a post hook naming the species; the first stage reads a CSV upload when one
  is sent.

Both projects are made and both servers started once for this module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server

SETOSA = [5.1, 3.5, 1.4, 0.2]
VERSICOLOR = [6.4, 3.2, 4.5, 1.5]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]

TORCH_TRAIN = '''
"""scaler.pkl + net.pkl: a scaler, and a small torch network trained on its output."""
import pickle

import torch
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler

X, y = load_iris(return_X_y=True)
scaler = StandardScaler().fit(X)
with open("scaler.pkl", "wb") as handle:
    pickle.dump(scaler, handle)
inputs, targets = torch.tensor(scaler.transform(X), dtype=torch.float32), torch.tensor(y)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3), torch.nn.Softmax(dim=1))
optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
for _ in range(150):
    optimizer.zero_grad()
    torch.nn.functional.nll_loss(torch.log(net(inputs)), targets).backward()
    optimizer.step()
torch.save(net.eval(), "net.pkl")  # a whole module, not TorchScript
'''

TORCH_CONFIG = """
name: flow-torch
models:
  - type: sklearn_preprocessor
    file: scaler.pkl
    hooks:
      pre: hooks.py:named_rows
  - type: torch
    file: net.pkl
    hooks:
      post: hooks.py:describe
tests:
  - name: setosa
    json: [[5.1, 3.5, 1.4, 0.2]]
"""

TORCH_HOOKS = '''
"""pre(data) on the scaler; post(out, data, files) on the network."""
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
SPECIES = ("setosa", "versicolor", "virginica")


def named_rows(data):
    """Rows may be lists or objects with the feature names."""
    return [[row[name] for name in FEATURES] if isinstance(row, dict) else row for row in data]


def describe(out, data, files):
    return [
        {
            "species": SPECIES[int(probs.argmax())],
            "probabilities": probs,                     # a tensor row
            "out_type": type(out).__name__,             # what the network returned
            "input_type": type(data).__name__,          # what this stage was given: the scaler's output
            "input_dtype": str(data.dtype),
            "files": [[f.name, f.content_type] for f in files],
        }
        for probs in out
    ]
'''

SKLEARN_TRAIN = '''
"""scaler.joblib + model.pkl: a scaler, and a logistic regression on its output."""
import pickle

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

X, y = load_iris(return_X_y=True)
scaler = StandardScaler().fit(X)
joblib.dump(scaler, "scaler.joblib")
with open("model.pkl", "wb") as handle:
    pickle.dump(LogisticRegression(max_iter=1000).fit(scaler.transform(X), y), handle)
'''

SKLEARN_CONFIG = """
name: flow-sklearn
models:
  - type: sklearn_preprocessor
    file: scaler.joblib
    hooks:
      pre: hooks.py:rows_or_csv
      post: hooks.py:rounded
  - type: sklearn
    file: model.pkl
    hooks:
      post: hooks.py:species
tests:
  - name: setosa
    json: [[5.1, 3.5, 1.4, 0.2]]
"""

SKLEARN_HOOKS = '''
"""pre(data, files) and post(out) on the scaler; post(out, data) on the classifier."""
import csv
import io

SPECIES = ("setosa", "versicolor", "virginica")


def rows_or_csv(data, files):
    """The rows of an uploaded CSV when there is one, else the JSON rows."""
    if not files:
        return data
    assert files[0].tell() == 0
    text = files[0].read().decode("utf-8")
    return [[float(value) for value in row] for row in csv.reader(io.StringIO(text)) if row]


def rounded(out):
    return out.round(3)


def species(out, data):
    """data is what this stage was given: the scaler's rounded output."""
    return [{"species": SPECIES[int(label)], "scaled": [float(v) for v in row]} for label, row in zip(out, data)]
'''


def make_project(root: Path, name: str, config: str, hooks: str, train: str) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "conduit.yaml").write_text(config)
    (directory / "hooks.py").write_text(hooks)
    (directory / "train.py").write_text(train)
    made = subprocess.run([sys.executable, "train.py"], cwd=directory, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    return directory


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, serve: Any) -> Iterator[dict[str, Server]]:
    """The two flows, each trained and served once for this module, in parallel."""
    root = tmp_path_factory.mktemp("flows")
    jobs = {
        "torch": ("flow-torch", TORCH_CONFIG, TORCH_HOOKS, TORCH_TRAIN),
        "sklearn": ("flow-sklearn", SKLEARN_CONFIG, SKLEARN_HOOKS, SKLEARN_TRAIN),
    }

    def start(job: tuple[str, str, str, str]) -> Server:
        server: Server = serve(make_project(root, *job) / "conduit.yaml", timeout=300)
        return server

    with ThreadPoolExecutor(len(jobs)) as pool:
        started = dict(zip(jobs, pool.map(start, jobs.values()), strict=True))
    yield started
    for server in started.values():
        server.stop()


def post(server: Server, **kwargs: Any) -> list[Any]:
    response = httpx.post(server.url + "/predict", headers=server.headers, timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(answer["prediction_ids"]) == len(answer["result"])
    rows: list[Any] = answer["result"]
    return rows


def test_preprocessor_to_torch_bridges_numpy_to_a_tensor(servers: dict[str, Server]) -> None:
    """The scaler's float64 ndarray reaches the torch stage as a float32 tensor (else the
    network would raise), and the tensor it returns comes back as JSON lists."""
    rows = post(servers["torch"], json=[SETOSA, VERSICOLOR, VIRGINICA])
    assert [row["species"] for row in rows] == ["setosa", "versicolor", "virginica"]
    for row in rows:
        assert len(row["probabilities"]) == 3
        assert sum(row["probabilities"]) == pytest.approx(1.0, abs=1e-5)
        assert row["out_type"] == "Tensor"
        assert (row["input_type"], row["input_dtype"]) == ("ndarray", "float64")
        assert row["files"] == []


def test_pre_hook_of_one_argument_reshapes_the_request(servers: dict[str, Server]) -> None:
    """pre(data) on the first stage turns objects with feature names into rows."""
    names = ("sepal_length", "sepal_width", "petal_length", "petal_width")
    rows = post(servers["torch"], json={"data": [dict(zip(names, VIRGINICA, strict=True)), SETOSA]})
    assert [row["species"] for row in rows] == ["virginica", "setosa"]


def test_post_hook_of_three_arguments_gets_the_files(servers: dict[str, Server]) -> None:
    """post(out, data, files) on the second stage sees the uploads with name and Content-Type."""
    form = {"data": (None, json.dumps([SETOSA]))}
    parts = [("files", ("a.txt", b"x", "text/plain")), ("file1", ("b.bin", b"y", "application/octet-stream"))]
    rows = post(servers["torch"], files=[*form.items(), *parts])
    assert rows[0]["species"] == "setosa"
    assert rows[0]["files"] == [["a.txt", "text/plain"], ["b.bin", "application/octet-stream"]]


def test_preprocessor_to_sklearn_with_post_hooks(servers: dict[str, Server]) -> None:
    """post(out) on the scaler rounds its output; post(out, data) on the classifier names
    the species and sees that rounded output as its stage's data."""
    rows = post(servers["sklearn"], json=[SETOSA, VERSICOLOR, VIRGINICA])
    assert [row["species"] for row in rows] == ["setosa", "versicolor", "virginica"]
    first = rows[0]["scaled"]
    assert first[0] == pytest.approx(-0.901, abs=1e-9)  # StandardScaler on iris, rounded to 3 places
    assert all(round(value, 3) == value for row in rows for value in row["scaled"])


def test_pre_hook_with_files_reads_a_csv_upload(servers: dict[str, Server]) -> None:
    """pre(data, files) reads the rows of a CSV sent as a form file part (seed's curl shape)."""
    csv_text = "\n".join(",".join(str(v) for v in row) for row in (VIRGINICA, SETOSA, VERSICOLOR)) + "\n"
    form = [("data", (None, "[]")), ("files", ("iris.csv", csv_text.encode(), "text/csv"))]
    rows = post(servers["sklearn"], files=form)
    assert [row["species"] for row in rows] == ["virginica", "setosa", "versicolor"]


def test_flow_error_in_a_hook_is_422(servers: dict[str, Server]) -> None:
    """A hook refusing the input (KeyError: a missing feature name) is a 422 naming the stage."""
    server = servers["torch"]
    response = httpx.post(server.url + "/predict", json=[{"sepal_length": 1.0}], headers=server.headers, timeout=30)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert "models[0]" in error["message"] and "pre hook" in error["message"]

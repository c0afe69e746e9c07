"""The Open Inference Protocol (KServe V2 REST) beside /predict, spoken by the real Triton
client (`tritonclient[http]`) against `conduit serve`: scikit-learn (iris), ONNX (made with
skl2onnx here) and a python model of two inputs that also takes BYTES elements as files."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from conftest import API_KEY, Server, conduit
from tritonclient.utils import InferenceServerException

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
AUTH = {"Authorization": API_KEY}


def auth() -> dict[str, str]:
    """A fresh dict: the Triton client adds Inference-Header-Content-Length to the one it is given."""
    return dict(AUTH)

ONNX_CONFIG = """
name: iris-onnx
models:
  - type: onnx
    file: model.onnx
tests:
  - name: setosa
    v2: {inputs: [{name: X, shape: [1, 4], datatype: FP32, data: [5.1, 3.5, 1.4, 0.2]}]}
    expect: {result: [0]}
"""

PYTHON_CONFIG = """
name: two-inputs
models:
  - type: python
    file: model.py:TwoInputs
tests:
  - name: sum
    v2:
      inputs:
        - {name: a, shape: [2], datatype: INT32, data: [1, 2]}
        - {name: b, shape: [2], datatype: FP32, data: [3, 4]}
    expect: {result: [4.0, 6.0]}
"""

PYTHON_MODEL = '''
"""Two named inputs in, two named outputs out; BYTES elements arrive as files."""
import numpy as np


class TwoInputs:
    thread_safe = True

    def predict(self, data, files):
        if files:  # a BYTES input sent as binary data: one file per element
            return {"sizes": np.array([len(f.read()) for f in files], dtype=np.int64),
                    "names": [f.name for f in files], "types": [f.content_type for f in files]}
        if not isinstance(data, dict):
            raise ValueError("send inputs a and b")
        a, b = np.asarray(data["a"]), np.asarray(data["b"])
        return {"sum": a + b, "product": a * b, "label": ["small" if x < 10 else "big" for x in (a + b).ravel()]}
'''


@pytest.fixture(scope="module")
def iris(serve: Any, examples: Path) -> Server:
    server: Server = serve(examples / "iris" / "conduit.yaml")
    return server


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    directory = tmp_path_factory.mktemp("oip-onnx")
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    model = LogisticRegression(max_iter=500).fit(X, y)
    graph = to_onnx(model, X[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    (directory / "model.onnx").write_bytes(graph.SerializeToString())
    (directory / "conduit.yaml").write_text(ONNX_CONFIG)
    return directory


@pytest.fixture(scope="module")
def onnx_server(serve: Any, onnx_dir: Path) -> Server:
    """Warmed up with its V2 example: the first of its tests."""
    server: Server = serve(onnx_dir / "conduit.yaml")
    return server


@pytest.fixture(scope="module")
def python_server(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Server:
    directory = tmp_path_factory.mktemp("oip-python")
    (directory / "model.py").write_text(PYTHON_MODEL)
    (directory / "conduit.yaml").write_text(PYTHON_CONFIG)
    server: Server = serve(directory / "conduit.yaml")
    return server


def client_of(server: Server) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def iris_client(iris: Server) -> Iterator[triton.InferenceServerClient]:
    yield from client_of(iris)


def tensor(name: str, array: np.ndarray, datatype: str, binary: bool) -> triton.InferInput:
    given = triton.InferInput(name, list(array.shape), datatype)
    given.set_data_from_numpy(array, binary_data=binary)
    return given


# -- health and metadata ---------------------------------------------------------------------------


def test_health_and_metadata_through_the_triton_client(iris_client: triton.InferenceServerClient) -> None:
    assert iris_client.is_server_live() and iris_client.is_server_ready()
    assert iris_client.is_model_ready("iris") and iris_client.is_model_ready("iris", "1")
    assert not iris_client.is_model_ready("not-iris")
    assert not iris_client.is_model_ready("iris", "2")
    server = iris_client.get_server_metadata()
    assert server["name"] == "conduit" and "binary_tensor_data" in server["extensions"]
    metadata = iris_client.get_model_metadata("iris")
    assert metadata == iris_client.get_model_metadata("iris", "1")
    assert metadata["name"] == "iris" and metadata["platform"] == "sklearn" and metadata["versions"] == ["1"]
    # scikit-learn's n_features_in_ says 4; the rows are open (-1); a label per row comes out
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert metadata["outputs"] == [{"name": "output-0", "datatype": "INT64", "shape": [-1]}]
    with pytest.raises(InferenceServerException) as missing:
        iris_client.get_model_metadata("not-iris")
    assert missing.value.status() == "404"


def test_probes_answer_without_a_key(iris: Server) -> None:
    assert httpx.get(iris.url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(iris.url + "/v2/health/ready").json() == {"ready": True}
    assert httpx.get(iris.url + "/v2/models/iris/ready").json() == {"name": "iris", "ready": True}


# -- infer: scikit-learn ---------------------------------------------------------------------------


@pytest.mark.parametrize("binary_in", [True, False])
@pytest.mark.parametrize("binary_out", [True, False])
def test_sklearn_infer_matches_predict(iris: Server, iris_client: triton.InferenceServerClient,
                                       binary_in: bool, binary_out: bool) -> None:
    expected = httpx.post(iris.url + "/predict", json=ROWS.tolist(), headers=auth()).json()["result"]
    result = iris_client.infer(
        "iris", [tensor("rows", ROWS, "FP32", binary_in)], headers=auth(), request_id="req-7",
        outputs=[triton.InferRequestedOutput("output-0", binary_data=binary_out)],
    )
    assert result.as_numpy("output-0").tolist() == expected == [0, 2]
    answer = result.get_response()
    assert answer["model_name"] == "iris" and answer["id"] == "req-7"
    (output,) = answer["outputs"]
    assert output["datatype"] == "INT64" and output["shape"] == [2]
    assert ("data" in output) is not binary_out and ("binary_data_size" in output.get("parameters", {})) is binary_out


def test_infer_without_requested_outputs_defaults_to_binary(iris_client: triton.InferenceServerClient) -> None:
    """The client asks for every output as binary data when it names none (binary_data_output)."""
    result = iris_client.infer("iris", [tensor("rows", ROWS.astype(np.float64), "FP64", False)], headers=auth(),
                               model_version="1")
    assert result.as_numpy("output-0").tolist() == [0, 2]
    assert result.get_response()["outputs"][0]["parameters"] == {"binary_data_size": 16}


def test_prediction_ids_and_the_log_line(iris: Server, iris_client: triton.InferenceServerClient) -> None:
    answer = iris_client.infer("iris", [tensor("rows", ROWS, "FP32", True)], headers=auth()).get_response()
    parameters = answer["parameters"]
    ids = parameters["prediction_ids"].split(",")
    assert len(ids) == 2 and all(re.fullmatch("[0-9a-f]{32}", i) for i in ids)
    line = next(json.loads(line) for line in iris.logs().splitlines() if parameters["run_id"] in line)
    assert line["event"] == "prediction" and line["status"] == 200 and line["prediction_ids"] == ids


# -- infer: errors ---------------------------------------------------------------------------------


def post_infer(server: Server, body: Any, path: str = "/v2/models/iris/infer",
               headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers=auth() if headers is None else headers, timeout=30)


def one_input(**changes: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "rows", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2], **changes}]}


@pytest.mark.parametrize("changes", [
    {"shape": [2, 4]},  # 4 numbers do not fill 2 rows
    {"shape": [1, -4]},
    {"datatype": "INT32"},  # floats are no INT32
    {"datatype": "BOOL"},
    {"datatype": "FLOAT"},  # not a datatype of the protocol
    {"data": [[5.1, 3.5], [1.4, 0.2]]},  # nested as [2, 2], not [1, 4]
    {"data": [5.1, 3.5, 1.4, "0.2"]},
    {"datatype": "UINT8", "data": [1, 2, 3, 300]},  # past UINT8
    {"datatype": "FP16", "data": [1, 2, 3, 1e6]},  # past FP16's finite range
])
def test_data_not_matching_shape_or_datatype_is_400(iris: Server, changes: dict[str, Any]) -> None:
    response = post_infer(iris, one_input(**changes))
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"} and isinstance(response.json()["error"], str)


def test_the_statuses_of_predict(iris: Server) -> None:
    assert post_infer(iris, one_input()).status_code == 200
    assert post_infer(iris, one_input(data=[[5.1, 3.5, 1.4, 0.2]])).status_code == 200  # nested as its shape
    missing = post_infer(iris, one_input(), path="/v2/models/not-iris/infer")
    assert missing.status_code == 404 and "not-iris" in missing.json()["error"]
    assert post_infer(iris, one_input(), path="/v2/models/iris/versions/9/infer").status_code == 404
    no_key = post_infer(iris, one_input(), headers={})
    assert no_key.status_code == 401 and set(no_key.json()) == {"error"}
    assert post_infer(iris, one_input(), headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    wrong_width = post_infer(iris, one_input(shape=[1, 3], data=[1.0, 2.0, 3.0]))
    assert wrong_width.status_code == 422 and "4 features" in wrong_width.json()["error"]
    unknown_output = post_infer(iris, {**one_input(), "outputs": [{"name": "nope"}]})
    assert unknown_output.status_code == 400 and "output-0" in unknown_output.json()["error"]
    text = httpx.post(iris.url + "/v2/models/iris/infer", content=b"x", headers={**AUTH, "Content-Type": "text/plain"})
    assert text.status_code == 415 and set(text.json()) == {"error"}
    broken = httpx.post(iris.url + "/v2/models/iris/infer", content=b'{"inputs": [', headers=auth())
    assert broken.status_code == 400 and set(broken.json()) == {"error"}


def test_binary_request_by_hand(iris: Server) -> None:
    """The binary tensor data extension on the wire: the JSON, then the raw little-endian floats."""
    header = json.dumps({"inputs": [{"name": "rows", "shape": [2, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": ROWS.nbytes}}],
                         "outputs": [{"name": "output-0", "parameters": {"binary_data": True}}]}).encode()
    body = header + ROWS.astype("<f4").tobytes()
    response = httpx.post(iris.url + "/v2/models/iris/infer", content=body, headers={
        **AUTH, "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))})
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    answer = json.loads(response.content[:length])
    assert answer["outputs"][0]["parameters"]["binary_data_size"] == 16
    assert np.frombuffer(response.content[length:], "<i8").tolist() == [0, 2]
    short = httpx.post(iris.url + "/v2/models/iris/infer", content=body[:-4], headers={
        **AUTH, "Inference-Header-Content-Length": str(len(header))})
    assert short.status_code == 400 and "binary_data_size" in short.json()["error"]


# -- infer: ONNX -----------------------------------------------------------------------------------


def test_onnx_metadata_and_infer(onnx_server: Server) -> None:
    for client in client_of(onnx_server):
        metadata = client.get_model_metadata("iris-onnx")
        assert metadata["platform"] == "onnxruntime_onnx"
        assert metadata["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
        assert metadata["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [-1]}]
        for binary in (True, False):
            result = client.infer("iris-onnx", [tensor("X", ROWS, "FP32", binary)], headers=auth(),
                                  outputs=[triton.InferRequestedOutput("label", binary_data=binary)])
            assert result.as_numpy("label").tolist() == [0, 2]
        assert client.infer("iris-onnx", [tensor("X", ROWS, "FP32", True)], headers=auth()).as_numpy("label").tolist() \
            == [0, 2]


# -- infer: several inputs, several outputs, files -------------------------------------------------


def test_python_model_with_two_inputs_and_outputs(python_server: Server) -> None:
    a = np.array([[1, 2], [3, 40]], dtype=np.int32)
    b = np.array([[0.5, 1.5], [2.5, 3.5]], dtype=np.float32)
    for client in client_of(python_server):
        metadata = client.get_model_metadata("two-inputs")
        assert metadata["platform"] == "python" and metadata["inputs"] == [] and metadata["outputs"] == []
        for binary in (True, False):
            result = client.infer("two-inputs", [tensor("a", a, "INT32", binary), tensor("b", b, "FP32", binary)],
                                  headers=auth())
            assert result.as_numpy("sum").tolist() == (a + b).tolist()
            assert result.as_numpy("product").tolist() == (a * b).tolist()
            assert result.as_numpy("label").tolist() == [b"small", b"small", b"small", b"big"]
            answer = result.get_response()
            assert [o["datatype"] for o in answer["outputs"]] == ["FP64", "FP64", "BYTES"]
            assert answer["outputs"][0]["shape"] == [2, 2]
        only = client.infer("two-inputs", [tensor("a", a, "INT32", False), tensor("b", b, "FP32", False)],
                            headers=auth(), outputs=[triton.InferRequestedOutput("label", binary_data=False)])
        assert [o["name"] for o in only.get_response()["outputs"]] == ["label"]
        assert only.get_response()["outputs"][0]["data"] == ["small", "small", "small", "big"]


def test_bytes_elements_reach_the_model_as_files(python_server: Server) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 20
    blobs = np.array([png, b"plain bytes"], dtype=np.object_)
    for client in client_of(python_server):
        result = client.infer("two-inputs", [tensor("images", blobs, "BYTES", True)], headers=auth())
        assert result.as_numpy("sizes").tolist() == [len(png), len(b"plain bytes")]
        assert result.as_numpy("names").tolist() == [b"images-0", b"images-1"]
        assert result.as_numpy("types").tolist() == [b"image/png", b"application/octet-stream"]
    # The same on the wire: each element a 4-byte little-endian length, then its bytes.
    blob = b"".join(struct.pack("<I", len(e)) + e for e in (png, b"xy"))
    header = json.dumps({"inputs": [{"name": "f", "shape": [2], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(blob)}}]}).encode()
    response = httpx.post(python_server.url + "/v2/models/two-inputs/infer", content=header + blob,
                          headers={**AUTH, "Inference-Header-Content-Length": str(len(header))})
    assert response.status_code == 200, response.text
    sizes = next(o for o in response.json()["outputs"] if o["name"] == "sizes")
    assert sizes["data"] == [len(png), 2]
    bad = httpx.post(python_server.url + "/v2/models/two-inputs/infer", content=header + blob[:-1],
                     headers={**AUTH, "Inference-Header-Content-Length": str(len(header))})
    assert bad.status_code == 400


# -- /openapi.json -----------------------------------------------------------------------------------


def test_schemathesis_on_the_v2_routes(onnx_server: Server, tmp_path: Path) -> None:
    """Every check of schemathesis on the V2 routes as /openapi.json documents them: no 5xx,
    documented statuses and bodies, schema-valid requests taken and invalid ones refused."""
    spec = httpx.get(onnx_server.url + "/openapi.json").json()
    assert {"/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/ready",
            "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"} <= set(spec["paths"])
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", onnx_server.url + "/openapi.json", "--checks", "all",
         "-H", f"Authorization: {API_KEY}", "--include-path-regex", "^/v2", "--phases", "coverage,fuzzing",
         "--max-examples", "100", "--seed", "7", "--no-color"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "9 passed" in run.stdout


def test_conduit_test_sends_v2_examples(onnx_server: Server, onnx_dir: Path) -> None:
    result = conduit("test", "-f", str(onnx_dir / "conduit.yaml"), "--url", onnx_server.url, "--repeat", "2", "--json",
                     env={"CONDUIT_API_KEY": API_KEY})
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    example = checks["example setosa (v2)"]
    assert example["status"] == "pass" and "as expected" in example["reason"]
    # the checks about /predict's errors still send a /predict request, not the V2 one
    assert checks["401 without a key"]["status"] == "skip"

"""DESIGN §3 over a real socket: request forms, auth, the envelope, the probes,
/openapi.json, /metrics, the log line per prediction, and a sync model that
does not block the event loop. Error statuses are in test_errors.py, random
bodies in test_fuzz_http.py."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEY

HEX32 = re.compile(r"^[0-9a-f]{32}$")

ECHO_MODEL = '''
import hashlib
import time


class Echo:
    """Returns the data rows, or one row per uploaded file describing it."""

    thread_safe = True  # no state between calls: predictions may run side by side

    def load(self, project_dir):
        self.project_dir = project_dir

    def predict(self, data, files):
        for row in data:
            if isinstance(row, dict) and "sleep" in row:
                time.sleep(row["sleep"])
        if not files:
            return data
        described = []
        for upload in files:
            assert upload.tell() == 0 and upload.seekable() and upload.readable()
            content = upload.read()
            described.append({
                "name": upload.name,
                "content_type": upload.content_type,
                "size": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
                "data": data,
            })
        return described
'''

ECHO_YAML = """
name: echo
models:
  - type: python
    file: model.py:Echo
server:
  max_body_mb: 8
tests:
  - name: first
    json: [1]
"""


def write_project(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root / "conduit.yaml"


@pytest.fixture(scope="module")
def servers(serve: Any, examples: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """iris (JSON), digits (multipart PNG), echo (python) and an open echo
    (no key set) started side by side, once for the module."""
    echo = write_project(tmp_path_factory.mktemp("echo"), {"conduit.yaml": ECHO_YAML, "model.py": ECHO_MODEL})
    open_echo = write_project(tmp_path_factory.mktemp("open"), {"conduit.yaml": ECHO_YAML, "model.py": ECHO_MODEL})
    jobs = {
        "iris": (examples / "iris" / "conduit.yaml", API_KEY),
        "digits": (examples / "digits" / "conduit.yaml", API_KEY),
        "echo": (echo, API_KEY),
        "open": (open_echo, None),
    }
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {name: pool.submit(serve, config, key=key) for name, (config, key) in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def iris(servers: dict[str, Any]) -> Any:
    return servers["iris"]


@pytest.fixture(scope="module")
def digits(servers: dict[str, Any]) -> Any:
    return servers["digits"]


@pytest.fixture(scope="module")
def echo(servers: dict[str, Any]) -> Any:
    return servers["echo"]


def assert_envelope(response: httpx.Response, rows: int | None = None) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"result", "run_id", "run_time_ms", "prediction_ids"}
    assert isinstance(body["result"], list)
    run_id = uuid.UUID(body["run_id"])
    assert run_id.version == 4 and str(run_id) == body["run_id"]
    assert isinstance(body["run_time_ms"], (int, float)) and not isinstance(body["run_time_ms"], bool)
    assert body["run_time_ms"] >= 0
    ids = body["prediction_ids"]
    assert len(ids) == len(body["result"])
    assert all(isinstance(i, str) and HEX32.match(i) for i in ids)
    assert len(set(ids)) == len(ids)
    if rows is not None:
        assert len(body["result"]) == rows
    assert response.headers["x-request-id"] == body["run_id"]
    return body


def post(server: Any, **kwargs: Any) -> httpx.Response:
    headers = {**server.headers, **kwargs.pop("headers", {})}
    return httpx.post(server.url + "/predict", headers=headers, timeout=30, **kwargs)


# -- JSON bodies ---------------------------------------------------------------------


def test_json_bare_list(iris: Any) -> None:
    body = assert_envelope(post(iris, json=[[5.1, 3.5, 1.4, 0.2]]), rows=1)
    assert body["result"] == [0]


def test_json_object_with_data_and_parameters(iris: Any) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    assert assert_envelope(post(iris, json={"data": rows}), rows=2)["result"] == [0, 2]
    assert assert_envelope(post(iris, json={"data": rows, "parameters": {"k": 1}}), rows=2)["result"] == [0, 2]
    assert assert_envelope(post(iris, json={"data": rows, "parameters": None}), rows=2)["result"] == [0, 2]


def test_json_without_content_type_and_with_charset(echo: Any) -> None:
    """A body sent without Content-Type, or as application/json; charset=utf-8, is JSON."""
    no_type = httpx.Request("POST", echo.url + "/predict", content=b"[1, 2]", headers=echo.headers)
    assert "content-type" not in no_type.headers
    with httpx.Client() as client:
        assert assert_envelope(client.send(no_type), rows=2)["result"] == [1, 2]
    headers = {"Content-Type": "application/json; charset=utf-8"}
    assert assert_envelope(post(echo, content='["é", 3]'.encode(), headers=headers))["result"] == ["é", 3]


def test_json_rows_round_trip(echo: Any) -> None:
    data = [None, True, 1, -2.5, "text", [1, [2, {}]], {"a": {"b": [None]}}]
    body = assert_envelope(post(echo, json=data), rows=len(data))
    assert body["result"] == data


def test_empty_data_list_is_an_empty_result(echo: Any) -> None:
    body = assert_envelope(post(echo, json=[]), rows=0)
    assert body["result"] == [] and body["prediction_ids"] == []


@pytest.mark.parametrize("data", [[[5.1, 3.5]], [["a", "b", "c", "d"]]])
def test_a_real_model_rejecting_the_input_is_422(iris: Any, data: Any) -> None:
    response = post(iris, json=data)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["code"] == "invalid_input" and "Traceback" not in response.text


def test_a_real_hook_rejecting_the_input_is_422(digits: Any) -> None:
    response = post(digits, json=[None])  # no image uploaded: the pre hook refuses
    assert response.status_code == 422 and "PNG" in response.json()["error"]["message"]


# -- multipart bodies ------------------------------------------------------------------


def describe(content: bytes) -> dict[str, Any]:
    return {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}


def test_multipart_files_any_field_name_in_body_order(echo: Any) -> None:
    parts = [
        ("file0", ("b.bin", b"\x00\x01second", "application/octet-stream")),
        ("file1", ("a.txt", b"first?", "text/plain")),
        ("files", ("c.png", b"\x89PNG not really", "image/png")),
        ("whatever", ("d.json", b'{"x": 1}', "application/json")),
    ]
    response = post(echo, data={"data": '[null, "x"]'}, files=parts)
    body = assert_envelope(response, rows=4)
    assert [row["name"] for row in body["result"]] == ["b.bin", "a.txt", "c.png", "d.json"]
    assert [row["content_type"] for row in body["result"]] == [p[1][2] for p in parts]
    for row, (_, (_, content, _)) in zip(body["result"], parts, strict=True):
        assert {"size": row["size"], "sha256": row["sha256"]} == describe(content)
        assert row["data"] == [None, "x"]


def test_multipart_same_field_name_repeated_keeps_order(echo: Any) -> None:
    parts = [("files", (f"{i}.bin", bytes([i]) * (i + 1), "application/octet-stream")) for i in range(6)]
    body = assert_envelope(post(echo, data={"data": "[]"}, files=parts), rows=6)
    assert [row["name"] for row in body["result"]] == [f"{i}.bin" for i in range(6)]
    assert [row["size"] for row in body["result"]] == [i + 1 for i in range(6)]


def test_multipart_data_only_and_files_only(echo: Any) -> None:
    boundary = "conduitBoundary7"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="data"\r\n\r\n[1, {{"a": 2}}]\r\n--{boundary}--\r\n'
    ).encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    assert assert_envelope(post(echo, content=form, headers=headers))["result"] == [1, {"a": 2}]
    body = assert_envelope(post(echo, files={"file0": ("only.bin", b"abc")}), rows=1)
    assert body["result"][0]["name"] == "only.bin" and body["result"][0]["data"] == []


@pytest.mark.parametrize("content_type", [
    'multipart/form-data; boundary="quoted=boundary"',
    "Multipart/Form-Data; charset=utf-8; boundary=quoted=boundary",
])
def test_multipart_content_type_spellings(echo: Any, content_type: str) -> None:
    form = (
        '--quoted=boundary\r\nContent-Disposition: form-data; name="data"\r\n\r\n["é"]\r\n'
        '--quoted=boundary\r\nContent-Disposition: form-data; name="file0"; filename="ünï.txt"\r\n'
        "Content-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n--quoted=boundary--\r\n"
    ).encode()
    body = assert_envelope(post(echo, content=form, headers={"Content-Type": content_type}), rows=1)
    row = body["result"][0]
    assert (row["name"], row["content_type"], row["data"]) == ("ünï.txt", "text/plain; charset=utf-8", ["é"])


def test_multipart_large_file_spooled_to_disk_arrives_whole(echo: Any) -> None:
    big = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: past the 1 MiB spool threshold, under max_body_mb 8
    body = assert_envelope(post(echo, data={"data": "[null]"}, files={"files": ("big.bin", big)}), rows=1)
    assert {"size": body["result"][0]["size"], "sha256": body["result"][0]["sha256"]} == describe(big)


def test_multipart_filename_keeps_no_path(echo: Any) -> None:
    body = assert_envelope(post(echo, data={"data": "[]"}, files={"file0": ("dir/sub/x.png", b"1")}))
    assert body["result"][0]["name"] == "x.png"


def test_multipart_digits_pngs_with_file0_file1(digits: Any, examples: Path) -> None:
    samples = examples / "digits" / "samples"
    files = [
        ("file0", ("three.png", (samples / "three.png").read_bytes(), "image/png")),
        ("file1", ("seven.png", (samples / "seven-256.png").read_bytes(), "image/png")),
    ]
    assert assert_envelope(post(digits, data={"data": "[null, null]"}, files=files), rows=2)["result"] == [3, 7]
    files.reverse()
    assert post(digits, data={"data": "[null, null]"}, files=files).json()["result"] == [7, 3]


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "--silent", "--show-error", *args], capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_seeds_exact_curl_command(digits: Any, examples: Path) -> None:
    three = examples / "digits" / "samples" / "three.png"
    done = subprocess.run(
        ["curl", "--location", "--request", "POST", digits.url + "/predict", "--header", f"Authorization: {API_KEY}",
         "--header", "Content-Type: multipart/form-data", "-F", "data=[null]", "-F", f"files=@{three}"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["result"] == [3]
    assert HEX32.match(body["prediction_ids"][0]) and uuid.UUID(body["run_id"]).version == 4


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_with_two_files_and_bearer(digits: Any, examples: Path) -> None:
    samples = examples / "digits" / "samples"
    done = curl(
        "--location", "--request", "POST", digits.url + "/predict", "--header", f"Authorization: Bearer {API_KEY}",
        "--header", "Content-Type: multipart/form-data", "-F", "data=[null, null]",
        "-F", f"files=@{samples / 'seven.png'}", "-F", f"files=@{samples / 'three-256.png'}",
        "--write-out", "\n%{http_code}",
    )
    text, _, code = done.stdout.rpartition("\n")
    assert code == "200", done.stdout + done.stderr
    assert json.loads(text)["result"] == [7, 3]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_json(iris: Any) -> None:
    done = curl(iris.url + "/predict", "--header", f"Authorization: {API_KEY}", "--header", "Content-Type: application/json",
                "--data", "[[6.7, 3.0, 5.2, 2.3]]")
    assert json.loads(done.stdout)["result"] == [2]


# -- auth ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [API_KEY, f"Bearer {API_KEY}", f"bearer {API_KEY}", f"BEARER {API_KEY}", f"Bearer   {API_KEY}"])
def test_accepted_keys(echo: Any, value: str) -> None:
    assert post(echo, json=[1], headers={"Authorization": value}).status_code == 200


@pytest.mark.parametrize("value", [None, "", "wrong", f"{API_KEY}x", API_KEY[:-1], f"Basic {API_KEY}", "Bearer", f"Bearer {API_KEY} x", f"Token {API_KEY}"])
def test_refused_keys(echo: Any, value: str | None) -> None:
    headers = {} if value is None else {"Authorization": value}
    response = httpx.post(echo.url + "/predict", json=[1], headers=headers, timeout=10)
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["code"] == "unauthorized" and body["error"]["message"]
    assert uuid.UUID(body["run_id"]).version == 4
    assert API_KEY not in response.text


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/openapi.json"])
def test_probes_need_no_key(echo: Any, path: str) -> None:
    assert httpx.get(echo.url + path, timeout=10).status_code == 200
    assert httpx.get(echo.url + path, headers={"Authorization": "wrong"}, timeout=10).status_code == 200


def test_no_key_configured_means_open(servers: dict[str, Any]) -> None:
    open_echo = servers["open"]
    response = httpx.post(open_echo.url + "/predict", json=[7], timeout=10)
    assert assert_envelope(response)["result"] == [7]
    assert '"event":"warning"' in open_echo.logs() and "CONDUIT_API_KEY" in open_echo.logs()
    spec = httpx.get(open_echo.url + "/openapi.json", timeout=10).json()
    assert "security" not in spec["paths"]["/predict"]["post"]


# -- envelope and request ids -------------------------------------------------------


def test_one_unique_prediction_id_per_row(echo: Any) -> None:
    first = assert_envelope(post(echo, json=list(range(50))), rows=50)
    second = assert_envelope(post(echo, json=list(range(50))), rows=50)
    assert not set(first["prediction_ids"]) & set(second["prediction_ids"])
    assert first["run_id"] != second["run_id"]


def test_request_id_echoed_or_equal_to_run_id(echo: Any) -> None:
    sent = post(echo, json=[1], headers={"X-Request-ID": "trace-42/abc"})
    assert sent.headers["x-request-id"] == "trace-42/abc"
    assert uuid.UUID(sent.json()["run_id"]).version == 4
    generated = post(echo, json=[1])
    assert generated.headers["x-request-id"] == generated.json()["run_id"]


def test_request_id_on_errors(echo: Any) -> None:
    refused = httpx.post(echo.url + "/predict", json=[1], headers={"X-Request-ID": "rid-1"}, timeout=10)
    assert refused.status_code == 401 and refused.headers["x-request-id"] == "rid-1"
    bad = post(echo, content=b"{", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.headers["x-request-id"] == bad.json()["run_id"]


# -- probes, openapi, 404/405 ---------------------------------------------------------


def test_health_and_ready_bodies(echo: Any) -> None:
    health = httpx.get(echo.url + "/health", timeout=10)
    assert health.status_code == 200 and health.headers["content-type"].startswith("application/json")
    assert health.json() == {"status": "ok"}
    assert httpx.get(echo.url + "/ready", timeout=10).json() == {"status": "ready"}


def test_openapi_describes_both_request_forms(iris: Any) -> None:
    response = httpx.get(iris.url + "/openapi.json", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    post_op = spec["paths"]["/predict"]["post"]
    content = post_op["requestBody"]["content"]
    assert set(content) >= {"application/json", "multipart/form-data"}
    rows, wrapped = content["application/json"]["schema"]["oneOf"]
    assert {branch["type"] for branch in rows["anyOf"]} == {"array"}  # rows of 4 numbers, or one row
    assert wrapped["type"] == "object" and {"data", "parameters"} <= set(wrapped["properties"])
    form_props = content["multipart/form-data"]["schema"]["properties"]
    assert "data" in form_props and "files" not in form_props  # iris reads rows of numbers, no files
    assert {"200", "400", "401", "413", "415", "422", "429", "500", "503", "504"} <= set(post_op["responses"])
    assert post_op["security"] == [{"apiKey": []}]
    scheme = spec["components"]["securitySchemes"]["apiKey"]
    assert scheme["in"] == "header" and scheme["name"] == "Authorization"
    assert {"/health", "/ready", "/metrics"} <= set(spec["paths"])
    envelope = spec["components"]["schemas"]["Envelope"]
    assert set(envelope["required"]) == {"result", "run_id", "run_time_ms", "prediction_ids"}


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/nope", 404, "not_found"),
    ("POST", "/predict/extra", 404, "not_found"),
    ("GET", "/predict", 405, "method_not_allowed"),
    ("PUT", "/predict", 405, "method_not_allowed"),
    ("POST", "/health", 405, "method_not_allowed"),
    ("DELETE", "/ready", 405, "method_not_allowed"),
])
def test_404_and_405_are_json(echo: Any, method: str, path: str, status: int, code: str) -> None:
    response = httpx.request(method, echo.url + path, headers=echo.headers, timeout=10)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code and body["error"]["message"]
    assert uuid.UUID(body["run_id"]).version == 4


# -- metrics --------------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The Prometheus text format, line by line: every line is a comment
    (# HELP / # TYPE) or a sample `name{labels} value`; a TYPE comes before its samples."""
    assert text.endswith("\n")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    typed: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(" ", 3)
            assert parts[1] in ("HELP", "TYPE"), line
            if parts[1] == "TYPE":
                assert parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), line
                typed[parts[2]] = parts[3]
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        name, labels, value = match.group(1), match.group(2) or "", match.group(3)
        family = re.sub(r"_(bucket|sum|count|total)$", "", name)
        assert name in typed or family in typed, f"{name} has no # TYPE before it"
        key = (name, frozenset(LABEL.findall(labels)))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    return samples


def metric(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    found = [value for (n, ls), value in samples.items() if n == name and wanted <= set(ls)]
    return sum(found)


def test_metrics_are_prometheus_text_and_count_predictions(iris: Any) -> None:
    response = httpx.get(iris.url + "/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    before = parse_metrics(response.text)
    for _ in range(3):
        assert post(iris, json=[[5.1, 3.5, 1.4, 0.2]]).status_code == 200
    assert post(iris, content=b"[", headers={"Content-Type": "application/json"}).status_code == 400
    assert httpx.post(iris.url + "/predict", json=[[1, 2, 3, 4]], timeout=10).status_code == 401
    after = parse_metrics(httpx.get(iris.url + "/metrics", timeout=10).text)

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("conduit_predictions_total", status="200") == 3
    assert grew("conduit_predictions_total", status="400") == 1
    assert grew("conduit_predictions_total", status="401") == 1
    assert grew("conduit_prediction_duration_seconds_count") == 5
    assert grew("conduit_prediction_duration_seconds_sum") > 0
    assert metric(after, "conduit_ready") == 1
    assert metric(after, "conduit_predictions_running") == 0
    assert metric(after, "conduit_predictions_queued") == 0
    assert all(dict(labels).get("model") == "iris" for (_, labels) in after)
    buckets = sorted(
        ((float(dict(ls)["le"]), value) for (name, ls), value in after.items() if name == "conduit_prediction_duration_seconds_bucket"),
    )
    counts = [value for _, value in buckets]
    assert counts == sorted(counts), "histogram buckets must be cumulative"
    assert buckets[-1][0] == float("inf") and buckets[-1][1] == metric(after, "conduit_prediction_duration_seconds_count")


# -- the log line per prediction ------------------------------------------------------


def prediction_lines(server: Any) -> list[dict[str, Any]]:
    lines = []
    for line in server.logs().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == "prediction":
                lines.append(record)
    return lines


def test_one_json_log_line_per_prediction(echo: Any) -> None:
    answers = [
        post(echo, json=[1, 2, 3]),
        post(echo, data={"data": "[null]"}, files={"f": ("x.bin", b"1")}),
        post(echo, content=b"not json", headers={"Content-Type": "application/json"}),
        httpx.post(echo.url + "/predict", json=[1], timeout=10),
    ]
    deadline = time.monotonic() + 5
    while True:
        by_run = {}
        for record in prediction_lines(echo):
            by_run.setdefault(record["run_id"], []).append(record)
        run_ids = [a.json()["run_id"] for a in answers]
        if all(r in by_run for r in run_ids) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for answer, run_id in zip(answers, run_ids, strict=True):
        assert len(by_run[run_id]) == 1, f"expected one log line for {run_id}"
        record = by_run[run_id][0]
        assert {"run_id", "prediction_ids", "status", "run_time_ms"} <= set(record)
        assert record["status"] == answer.status_code
        assert isinstance(record["run_time_ms"], (int, float)) and record["run_time_ms"] >= 0
        if answer.status_code == 200:
            assert record["prediction_ids"] == answer.json()["prediction_ids"]
        else:
            assert record["prediction_ids"] == []
    assert [a.status_code for a in answers] == [200, 200, 400, 401]


# -- the event loop stays free ----------------------------------------------------------


def test_predictions_run_side_by_side_up_to_max_concurrency(echo: Any) -> None:
    """max_concurrency defaults to 4: four one-second predictions take about one second."""
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: post(echo, json=[{"sleep": 1.0}]), range(4)))
    assert [a.status_code for a in answers] == [200] * 4
    assert time.monotonic() - started < 1.9


def test_a_slow_sync_model_does_not_block_the_event_loop(echo: Any) -> None:
    results: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: results.append(post(echo, json=[{"sleep": 2.0}])))
    started = time.monotonic()
    slow.start()
    time.sleep(0.3)  # the slow prediction is now running in its worker thread
    timings = []
    for _ in range(5):
        t0 = time.monotonic()
        assert httpx.get(echo.url + "/health", timeout=5).status_code == 200
        timings.append(time.monotonic() - t0)
    quick = post(echo, json=[1])
    assert quick.status_code == 200 and time.monotonic() - started < 1.8, "a second prediction waited for the slow one"
    slow.join()
    assert results[0].status_code == 200 and time.monotonic() - started >= 2.0
    assert max(timings) < 0.5, timings

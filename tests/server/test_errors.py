"""Every error status of DESIGN §3 over a real socket, each with its JSON body
{"error": {"code", "message"}, "run_id"}: 400, 401, 404/405, 413 (declared and
chunked, refused while reading), 415, 422, 429, 500, 503 (loading, failed load,
warm-up), 504."""

from __future__ import annotations

import io
import json
import re
import select
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import API_KEY, in_background, metric, read_answer, wait_for
from PIL import Image

LIMIT = 1024 * 1024  # max_body_mb: 1 on the picky server
TRACEBACK = re.compile(r'Traceback \(most recent call last\)|File "[^"]+", line \d+')

PICKY_MODEL = '''
import sys
import time


class Picky:
    def predict(self, data, files):
        if files:
            return data
        for row in data:
            if not isinstance(row, dict):
                continue
            if "sleep" in row:
                time.sleep(row["sleep"])
            if "reject" in row:
                raise ValueError("row refused: " + str(row["reject"]))
            if "missing" in row:
                return {}[row["missing"]]
            if "crash" in row:
                raise RuntimeError("the model broke: " + str(row["crash"]))
            if "divide" in row:
                return [1 / 0]
            if "object" in row:
                return [object()]
            if "exit" in row:
                sys.exit(3)
        return data
'''

PICKY_HOOKS = '''
from PIL import Image


def pre(data, files):
    if data == ["hook-reject"]:
        raise ValueError("the pre hook refuses hook-reject")
    if files:
        return [list(Image.open(upload).convert("L").size) for upload in files]
    return data
'''

SLOW_MODEL = '''
import time


class Slow:
    def predict(self, data):
        for row in data:
            if isinstance(row, dict) and "sleep" in row:
                time.sleep(row["sleep"])
        return data
'''

GATED_LOAD_MODEL = '''
import time
from pathlib import Path


class Gated:
    def load(self, project_dir):
        gate = Path(project_dir) / "release"
        deadline = time.monotonic() + 120
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    def predict(self, data):
        return data
'''

FAILING_LOAD_MODEL = '''
class Broken:
    def load(self, project_dir):
        raise RuntimeError("weights file is corrupt (checksum 0xdead)")

    def predict(self, data):
        return data
'''

WARMUP_MODEL = '''
import json
import time
from pathlib import Path


class Recorder:
    """Records every call; the first one (the warm-up) waits for a gate file."""

    def load(self, project_dir):
        self.dir = Path(project_dir)
        (self.dir / "loaded").write_text("yes")

    def predict(self, data):
        calls = self.dir / "calls.jsonl"
        first = not calls.exists()
        with calls.open("a") as out:
            out.write(json.dumps(data) + "\\n")
        if first:
            deadline = time.monotonic() + 120
            while not (self.dir / "release").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        if data == ["refuse"]:
            raise ValueError("warm-up input refused by the model")
        return [{"calls": len(calls.read_text().splitlines())}]
'''


def python_project(name: str, cls: str, server: str = "", tests: str = "json: [1]", hooks: str | None = None) -> dict[str, str]:
    hooks_yaml = "    hooks: {pre: hooks.py:pre}\n" if hooks else ""
    yaml = (
        f"name: {name}\nmodels:\n  - type: python\n    file: model.py:{cls}\n{hooks_yaml}"
        f"server:\n  max_body_mb: 1\n{server}tests:\n  - name: {name}-first\n    {tests}\n"
    )
    return {"conduit.yaml": yaml} | ({"hooks.py": hooks} if hooks else {})


PROJECTS: dict[str, tuple[dict[str, str], str, bool]] = {
    # name: (files, model source, wait until ready)
    "picky": (python_project("picky", "Picky", hooks=PICKY_HOOKS), PICKY_MODEL, True),
    "busy0": (python_project("busy0", "Slow", "  max_concurrency: 1\n  max_queue: 0\n"), SLOW_MODEL, True),
    "busy1": (python_project("busy1", "Slow", "  max_concurrency: 1\n  max_queue: 1\n"), SLOW_MODEL, True),
    "slow": (python_project("slow", "Slow", "  timeout_s: 1\n  max_concurrency: 1\n  max_queue: 4\n"), SLOW_MODEL, True),
    "gated": (python_project("gated", "Gated"), GATED_LOAD_MODEL, False),
    "broken": (python_project("broken", "Broken"), FAILING_LOAD_MODEL, False),
    "warmup": (python_project("warmup", "Recorder", tests='json: {data: [["warm", 1]]}'), WARMUP_MODEL, False),
    "badwarmup": (python_project("badwarmup", "Recorder", tests='json: ["refuse"]'), WARMUP_MODEL, False),
}


@pytest.fixture(scope="module")
def servers(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every server of this module, started side by side once."""

    def start(name: str) -> Any:
        files, model, ready = PROJECTS[name]
        root = tmp_path_factory.mktemp(name)
        for file, text in {**files, "model.py": model}.items():
            (root / file).write_text(text)
        server = serve(root / "conduit.yaml", wait_ready=ready)
        server.root = root
        return server

    with ThreadPoolExecutor(len(PROJECTS)) as pool:
        return dict(zip(PROJECTS, pool.map(start, PROJECTS), strict=True))


@pytest.fixture(scope="module")
def picky(servers: dict[str, Any]) -> Any:
    return servers["picky"]


def post(server: Any, **kwargs: Any) -> httpx.Response:
    headers = {**server.headers, **kwargs.pop("headers", {})}
    return httpx.post(server.url + "/predict", headers=headers, timeout=30, **kwargs)


def assert_error(response: httpx.Response, status: int, code: str | None = None, *, in_message: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "run_id"}, body
    assert set(body["error"]) == {"code", "message"}
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    assert in_message in body["error"]["message"], body
    assert uuid.UUID(body["run_id"]).version == 4
    assert not TRACEBACK.search(response.text), response.text
    if "x-request-id" in response.headers:
        assert response.headers["x-request-id"] == body["run_id"]
    return body








# -- 400 ---------------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("body", [
    b"{", b"[1, 2", b"", b"   \n", b"\xff\xfe\x00garbage", b"[1] trailing", b'{"data": [1]} {}', b"[1,]",
    b"{'data': [1]}", b"[" * 100_000 + b"]" * 100_000, b"[" + b"9" * 5000 + b"]",
])
def test_400_malformed_json(picky: Any, body: bytes) -> None:
    assert_error(post(picky, content=body, headers=JSON), 400, "bad_json")


@pytest.mark.parametrize(("body", "hint"), [
    (b"{}", '"data"'),
    (b'{"parameters": {}}', '"data"'),
    (b'{"inputs": [[1, 2]]}', '"data"'),
    (b'{"data": 5}', "list"),
    (b'{"data": {"a": 1}}', "list"),
    (b'{"data": null}', "list"),
    (b'"text"', "list"),
    (b"5", "list"),
    (b"null", "list"),
    (b"true", "list"),
    (b'{"data": [1], "parameters": [1]}', "parameters"),
    (b'{"data": [1], "parameters": "x"}', "parameters"),
])
def test_400_wrong_shape(picky: Any, body: bytes, hint: str) -> None:
    assert_error(post(picky, content=body, headers=JSON), 400, "bad_shape", in_message=hint)


def form(*parts: tuple[str, str | None, bytes], boundary: str = "b0undary", end: bool = True) -> bytes:
    """A multipart body: (field name, filename or None, content)."""
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if end else b"")


MULTIPART = {"Content-Type": "multipart/form-data; boundary=b0undary"}


def png(size: tuple[int, int] = (4, 3)) -> bytes:
    out = io.BytesIO()
    Image.new("L", size, 128).save(out, "PNG")
    return out.getvalue()


def test_400_multipart_without_boundary(picky: Any) -> None:
    body = form(("data", None, b"[1]"))
    response = post(picky, content=body, headers={"Content-Type": "multipart/form-data"})
    assert_error(response, 400, "bad_form", in_message="boundary")


@pytest.mark.parametrize(("body", "code", "hint"), [
    (b"garbage that is not multipart", "bad_form", ""),
    (b"--b0undary\r\nno headers end", "bad_form", ""),
    (b"--b0undary\r\nContent-Disposition: form-data\r\n\r\n[1]\r\n--b0undary--\r\n", "bad_form", "name"),
    (form(("data", None, b"[1, 2"),), "bad_form", "JSON"),
    (form(("data", None, b"")), "bad_form", "JSON"),
    (form(("data", None, b'{"a": 1}'),), "bad_shape", "list"),
    (form(("data", None, b"[1]"), ("parameters", None, b"[1]")), "bad_shape", "parameters"),
])
def test_400_malformed_multipart(picky: Any, body: bytes, code: str, hint: str) -> None:
    assert_error(post(picky, content=body, headers=MULTIPART), 400, code, in_message=hint)


@pytest.mark.parametrize("body", [form(("parameters", None, b"{}")), form(), b"--b0undary--\r\n"])
def test_a_form_without_data_or_files_is_the_empty_list(picky: Any, body: bytes) -> None:
    """A form may omit `data`: it is then [], as the JSON body [] is; the model (or its pre
    hook) says whether that will do."""
    assert post(picky, content=body, headers=MULTIPART).json()["result"] == []


@pytest.mark.parametrize("cut", [10, 40, -30, -14, -12])
def test_400_multipart_cut_short_is_not_a_shorter_form(picky: Any, cut: int) -> None:
    """A body that ends before its closing boundary was truncated on the way:
    it must not be served as a form with fewer (or shorter) files."""
    body = form(("data", None, b"[null]"), ("file0", "a.png", png((3, 3))), ("file1", "b.png", png((5, 2))))
    assert post(picky, content=body, headers=MULTIPART).json()["result"] == [[3, 3], [5, 2]]
    assert_error(post(picky, content=body[:cut], headers=MULTIPART), 400, "bad_form")


def test_multipart_without_the_final_crlf_is_complete(picky: Any) -> None:
    body = form(("data", None, b"[1, 2]"))
    assert post(picky, content=body[:-2], headers=MULTIPART).json()["result"] == [1, 2]


# -- 401 ----------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "wrong"}, {"Authorization": f"Bearer {API_KEY}0"}, {"Authorization": "Bearer"}])
def test_401(picky: Any, headers: dict[str, str]) -> None:
    response = httpx.post(picky.url + "/predict", json=[1], headers=headers, timeout=10)
    assert_error(response, 401, "unauthorized")


def test_401_comes_before_reading_a_huge_body(picky: Any) -> None:
    """No key: refused from the headers alone, before the body is read."""
    status, _, body = raw_request(picky, [b"Content-Type: application/json", b"Content-Length: 1073741824"], send=iter(()))
    assert status == 401 and json.loads(body)["error"]["code"] == "unauthorized"


# -- 404 / 405 ----------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/", 404), ("GET", "/predictions", 404), ("GET", "/predict", 405), ("PATCH", "/metrics", 405)])
def test_404_405_json(picky: Any, method: str, path: str, status: int) -> None:
    assert_error(httpx.request(method, picky.url + path, timeout=10), status)


def test_405_names_the_allowed_methods(picky: Any) -> None:
    response = httpx.get(picky.url + "/predict", timeout=10)
    assert response.status_code == 405
    assert "POST" in response.headers.get("allow", "")


# -- 413 ----------------------------------------------------------------------------


def test_413_with_content_length_json(picky: Any) -> None:
    exact = b"[" + b" " * (LIMIT - 3) + b"1]"
    assert len(exact) == LIMIT
    assert post(picky, content=exact, headers=JSON).json()["result"] == [1]
    response = post(picky, content=exact + b" ", headers=JSON)
    assert_error(response, 413, "payload_too_large", in_message="max_body_mb")


def test_413_with_content_length_multipart(picky: Any) -> None:
    response = post(picky, data={"data": "[null]"}, files={"files": ("big.bin", b"\0" * (LIMIT + 1))})
    assert response.request.headers.get("content-length")
    assert_error(response, 413, "payload_too_large", in_message="max_body_mb")


def chunks(total: int, piece: bytes) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)


def test_413_chunked_json_without_content_length(picky: Any) -> None:
    body = chunks(3 * LIMIT, b"1," * 4096)
    response = post(picky, content=body, headers=JSON)
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "payload_too_large", in_message="max_body_mb")


def test_413_chunked_multipart_without_content_length(picky: Any) -> None:
    def body() -> Iterator[bytes]:
        yield b'--b0undary\r\nContent-Disposition: form-data; name="data"\r\n\r\n[null]\r\n'
        yield b'--b0undary\r\nContent-Disposition: form-data; name="files"; filename="x.bin"\r\n\r\n'
        yield from chunks(3 * LIMIT, b"\xab" * 8192)
        yield b"\r\n--b0undary--\r\n"

    response = post(picky, content=body(), headers=MULTIPART)
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


def raw_request(server: Any, headers: list[bytes], send: Iterator[bytes]) -> tuple[int, dict[str, str], bytes]:
    """POST /predict on a raw socket, sending `send` only while the server has
    not answered; returns the answer and counts what was sent in .sent."""
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        head = [b"POST /predict HTTP/1.1", f"Host: {address.netloc}".encode(), *headers]
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n")
        sock.setblocking(False)
        raw_request.sent = 0  # type: ignore[attr-defined]
        pending = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                break
            if writable:
                if not pending:
                    pending = next(send, b"")
                    if not pending:
                        select.select([sock], [], [], 10)
                        break
                try:
                    count = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    break
                pending = pending[count:]
                raw_request.sent += count  # type: ignore[attr-defined]
        sock.setblocking(True)
        status, fields, body = read_answer(sock)
        return status, fields, body


def test_413_refused_while_reading_a_huge_chunked_body(picky: Any) -> None:
    """A 1 GiB chunked body without Content-Length: the server answers 413 once
    the limit is crossed, long before the client is done sending."""
    piece = b"1," * 32768
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    planned = 1 << 30
    started = time.monotonic()
    status, fields, body = raw_request(
        picky,
        [f"Authorization: {API_KEY}".encode(), b"Content-Type: application/json", b"Transfer-Encoding: chunked"],
        send=chunks(planned, frame),
    )
    sent = raw_request.sent  # type: ignore[attr-defined]
    assert status == 413, body
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert "content-length" in fields
    assert LIMIT < sent < 64 * LIMIT, f"sent {sent} bytes of {planned} before the answer"
    assert time.monotonic() - started < 20


def test_413_refused_while_reading_a_huge_multipart_upload(picky: Any) -> None:
    head = b'--b0undary\r\nContent-Disposition: form-data; name="files"; filename="huge.bin"\r\n\r\n'

    def frames() -> Iterator[bytes]:
        yield f"{len(head):x}\r\n".encode() + head + b"\r\n"
        piece = b"\x00" * 65536
        yield from chunks(1 << 30, f"{len(piece):x}\r\n".encode() + piece + b"\r\n")

    status, _, body = raw_request(
        picky,
        [f"Authorization: {API_KEY}".encode(), b"Content-Type: multipart/form-data; boundary=b0undary", b"Transfer-Encoding: chunked"],
        send=frames(),
    )
    assert status == 413, body
    assert raw_request.sent < 64 * LIMIT  # type: ignore[attr-defined]


def test_413_from_the_declared_length_before_any_body_byte(picky: Any) -> None:
    status, _, body = raw_request(
        picky,
        [f"Authorization: {API_KEY}".encode(), b"Content-Type: application/json", b"Content-Length: 1073741824"],
        send=iter(()),
    )
    assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"
    assert raw_request.sent == 0  # type: ignore[attr-defined]


def test_serving_goes_on_after_413(picky: Any) -> None:
    post(picky, content=chunks(2 * LIMIT, b"1," * 4096), headers=JSON)
    assert post(picky, json=[1, 2]).json()["result"] == [1, 2]


# -- 415 ----------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "application/xml", "image/png", "application/octet-stream",
    "multipart/mixed; boundary=x", "text/json", "application/jsonx",
])
def test_415(picky: Any, content_type: str) -> None:
    response = post(picky, content=b"[1]", headers={"Content-Type": content_type})
    body = assert_error(response, 415, "unsupported_media_type")
    assert "application/json" in body["error"]["message"] and "multipart/form-data" in body["error"]["message"]


def test_415_urlencoded_form(picky: Any) -> None:
    assert_error(post(picky, data={"data": "[1]"}), 415, "unsupported_media_type")


def test_json_media_types_accepted(picky: Any) -> None:
    for content_type in ("application/json", "APPLICATION/JSON; charset=UTF-8", "application/vnd.api+json"):
        assert post(picky, content=b"[3]", headers={"Content-Type": content_type}).status_code == 200


# -- 422 ----------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "hint"), [
    ([{"reject": "negative age"}], "negative age"),
    ([{"missing": "color"}], "KeyError"),
    (["hook-reject"], "pre hook refuses"),
])
def test_422_model_or_hook_rejects_the_input(picky: Any, data: list[Any], hint: str) -> None:
    assert_error(post(picky, json=data), 422, "invalid_input", in_message=hint)


def test_images_decode_through_the_hook(picky: Any) -> None:
    response = post(picky, data={"data": "[null, null]"}, files=[("file0", ("a.png", png((4, 3)))), ("file1", ("b.png", png((2, 5))))])
    assert response.json()["result"] == [[4, 3], [2, 5]]


@pytest.mark.parametrize("content", [b"not an image at all", b"", png()[:20], png()[:45], png()[:8] + b"\0" * 64])
def test_422_an_upload_the_image_decoder_refuses(picky: Any, content: bytes) -> None:
    """Pillow refusing the uploaded bytes (UnidentifiedImageError, or an
    OSError / SyntaxError for a truncated file) is the client's mistake: 422."""
    response = post(picky, data={"data": "[null]"}, files={"files": ("x.png", content, "image/png")})
    assert_error(response, 422, "invalid_input")


# -- 500 ----------------------------------------------------------------------------


def log_line(server: Any, run_id: str) -> dict[str, Any]:
    """The server's log line of the prediction with this run_id."""
    lines = [json.loads(line) for line in server.logs().splitlines() if run_id in line and line.startswith("{")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(("data", "exception", "hint"), [
    ([{"crash": "secret-detail"}], "RuntimeError", "the model broke: secret-detail"),
    ([{"divide": True}], "ZeroDivisionError", "division by zero"),
    ([{"object": True}], "TypeError", "cannot be returned as JSON"),
])
def test_500_has_a_fixed_message_and_the_log_line_has_the_exception(picky: Any, data: list[Any], exception: str,
                                                                     hint: str) -> None:
    """Nothing of the exception reaches the client; the log line of the same run_id has
    its type, message and traceback."""
    response = post(picky, json=data)
    body = assert_error(response, 500, "model_error", in_message="log")
    for internal in (exception, hint, "model.py", "secret"):
        assert internal not in response.text
    line = log_line(picky, body["run_id"])
    assert line["status"] == 500 and line["error"] == "model_error"
    assert line["exception"] == exception and hint in line["exception_message"]
    assert line["traceback"].startswith("Traceback (most recent call last)")


def test_500_model_calls_sys_exit(picky: Any) -> None:
    body = assert_error(post(picky, json=[{"exit": True}]), 500, "model_error")
    assert log_line(picky, body["run_id"])["exception"] == "SystemExit"
    assert picky.process.poll() is None


def test_the_server_still_serves_after_500s(picky: Any) -> None:
    assert post(picky, json=[{"crash": "x"}]).status_code == 500
    assert post(picky, json=[5]).json()["result"] == [5]


# -- 429 ----------------------------------------------------------------------------


def test_429_with_max_queue_0(servers: dict[str, Any]) -> None:
    busy = servers["busy0"]
    thread, out = in_background(lambda: post(busy, json=[{"sleep": 1.5}]))
    wait_for(lambda: metric(busy, "conduit_predictions_running") == 1, what="the slow prediction to run")
    started = time.monotonic()
    body = assert_error(post(busy, json=[1]), 429, "overloaded")
    assert time.monotonic() - started < 1, "a 429 is answered at once, not after waiting"
    assert "retry" in body["error"]["message"]
    thread.join()
    assert out[0].status_code == 200
    assert post(busy, json=[2]).json()["result"] == [2]


def test_429_with_max_queue_1(servers: dict[str, Any]) -> None:
    busy = servers["busy1"]
    first, first_out = in_background(lambda: post(busy, json=[{"sleep": 1.5}]))
    wait_for(lambda: metric(busy, "conduit_predictions_running") == 1, what="the first prediction to run")
    second, second_out = in_background(lambda: post(busy, json=["queued"]))
    wait_for(lambda: metric(busy, "conduit_predictions_queued") == 1, what="the second to queue")
    assert_error(post(busy, json=[3]), 429, "overloaded")
    first.join()
    second.join()
    assert first_out[0].status_code == 200
    assert second_out[0].json()["result"] == ["queued"]
    assert metric(busy, "conduit_predictions_total") >= 3
    assert metric(busy, "conduit_predictions_queued") == 0


# -- 504 ----------------------------------------------------------------------------


def test_504_timeout_running_and_queued(servers: dict[str, Any]) -> None:
    """timeout_s = 1 counts from arrival, queueing included."""
    slow = servers["slow"]
    started = time.monotonic()
    running, running_out = in_background(lambda: post(slow, json=[{"sleep": 2.5}]))
    wait_for(lambda: metric(slow, "conduit_predictions_running") == 1, what="the slow prediction to run")
    queued_start = time.monotonic()
    queued = post(slow, json=["waits for the slot"])
    queued_took = time.monotonic() - queued_start
    running.join()
    assert_error(running_out[0], 504, "timeout", in_message="timeout_s")
    assert_error(queued, 504, "timeout")
    assert 0.9 < queued_took < 2.2, queued_took
    assert time.monotonic() - started < 2.4, "the running request waited for its model instead of 1 s"
    wait_for(lambda: metric(slow, "conduit_predictions_running") == 0, what="the timed-out thread to end")
    assert post(slow, json=[1]).json()["result"] == [1]
    statuses = [json.loads(line)["status"] for line in slow.logs().splitlines() if '"event":"prediction"' in line]
    assert statuses.count(504) >= 2


def test_504_also_while_the_body_is_still_arriving(servers: dict[str, Any]) -> None:
    slow = servers["slow"]  # timeout_s: 1
    address = urlsplit(slow.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(
            f"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: {API_KEY}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 10\r\n\r\n[1"
        )
        sock.settimeout(2.5)
        try:
            answer = sock.recv(65536)
        except TimeoutError:
            answer = b""
    assert answer.startswith(b"HTTP/1.1 504"), "no answer 1.5 s past timeout_s"


# -- 503 ----------------------------------------------------------------------------


def test_503_while_loading_then_ready(servers: dict[str, Any]) -> None:
    gated = servers["gated"]
    t0 = time.monotonic()
    health = httpx.get(gated.url + "/health", timeout=5)
    assert health.status_code == 200 and time.monotonic() - t0 < 1
    body = assert_error(httpx.get(gated.url + "/ready", timeout=5), 503, "not_ready")
    assert "load" in body["error"]["message"]
    assert_error(post(gated, json=[1]), 503, "not_ready")
    assert metric(gated, "conduit_ready") == 0
    time.sleep(0.3)
    assert httpx.get(gated.url + "/ready", timeout=5).status_code == 503  # still loading
    (gated.root / "release").write_text("go")
    wait_for(lambda: httpx.get(gated.url + "/ready", timeout=5).status_code == 200, what="/ready")
    assert post(gated, json=[1]).json()["result"] == [1]
    assert metric(gated, "conduit_ready") == 1


def test_503_for_good_when_the_model_fails_to_load(servers: dict[str, Any]) -> None:
    broken = servers["broken"]
    wait_for(lambda: "load_failed" in broken.logs(), what="the load to fail")
    for _ in range(2):
        assert httpx.get(broken.url + "/health", timeout=5).status_code == 200
        ready = httpx.get(broken.url + "/ready", timeout=5)
        assert_error(ready, 503, "startup_failed", in_message="start-up failed")
        assert_error(post(broken, json=[1]), 503, "not_ready", in_message="start-up failed")
        assert "corrupt" not in ready.text and "RuntimeError" not in ready.text, "no exception text without a key"
        time.sleep(0.3)
    assert broken.process.poll() is None, "the server stays up to report why"
    failed = next(json.loads(line) for line in broken.logs().splitlines() if '"load_failed"' in line)
    assert "weights file is corrupt (checksum 0xdead)" in failed["exception_message"]
    assert failed["exception"] == "RuntimeError" and "in load" in failed["traceback"]


def test_ready_only_after_load_and_warm_up_with_the_first_example(servers: dict[str, Any]) -> None:
    warm = servers["warmup"]
    root = warm.root
    wait_for(lambda: (root / "calls.jsonl").exists(), what="the warm-up call")
    assert (root / "loaded").exists()
    # Loaded, warm-up running: not ready yet.
    body = assert_error(httpx.get(warm.url + "/ready", timeout=5), 503, "not_ready")
    assert "warm" in body["error"]["message"] and "warmup-first" in body["error"]["message"]
    assert_error(post(warm, json=[1]), 503, "not_ready")
    (root / "release").write_text("go")
    wait_for(lambda: httpx.get(warm.url + "/ready", timeout=5).status_code == 200, what="/ready")
    calls = [json.loads(line) for line in (root / "calls.jsonl").read_text().splitlines()]
    assert calls == [[["warm", 1]]], "the warm-up ran once, with the first tests: example"
    assert post(warm, json=["after"]).json()["result"] == [{"calls": 2}]


def test_503_when_the_warm_up_fails(servers: dict[str, Any]) -> None:
    bad = servers["badwarmup"]
    (bad.root / "release").write_text("go")
    wait_for(lambda: "load_failed" in bad.logs(), what="the warm-up to fail")
    ready = httpx.get(bad.url + "/ready", timeout=5)
    assert_error(ready, 503, "startup_failed", in_message="start-up failed")
    assert "warm-up input refused" not in ready.text
    assert "warm-up input refused" in bad.logs()
    assert_error(post(bad, json=[1]), 503, "not_ready")

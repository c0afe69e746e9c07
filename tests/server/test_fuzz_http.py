"""Property-based tests over a real socket: random bytes, random JSON, random
and broken multipart bodies, random content types and keys thrown at running
servers. A client's mistake is never a 5xx, every error is a JSON error body,
no answer carries a traceback, and what is valid round-trips exactly."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEY
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
TRACEBACK = re.compile(r'Traceback \(most recent call last\)|File "[^"]+", line \d+')
HEX32 = re.compile(r"^[0-9a-f]{32}$")

ECHO_MODEL = '''
import hashlib


class Echo:
    """[data, [one description per file, in upload order]]"""

    def predict(self, data, files):
        described = []
        for upload in files:
            content = upload.read()
            described.append([upload.name, upload.content_type, len(content), hashlib.sha256(content).hexdigest()])
        return [data, described]
'''

ECHO_YAML = """
name: fuzz-echo
models:
  - type: python
    file: model.py:Echo
server:
  max_body_mb: 1
tests:
  - name: first
    json: [1]
"""


@pytest.fixture(scope="module")
def servers(serve: Any, examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("fuzz-echo")
    (root / "conduit.yaml").write_text(ECHO_YAML)
    (root / "model.py").write_text(ECHO_MODEL)
    with ThreadPoolExecutor(2) as pool:
        echo = pool.submit(serve, root / "conduit.yaml")
        digits = pool.submit(serve, examples / "digits" / "conduit.yaml")
        started = {"echo": echo.result(), "digits": digits.result()}
    with httpx.Client(timeout=30) as client:
        started["client"] = client
        yield started


@pytest.fixture(scope="module")
def echo(servers: dict[str, Any]) -> Any:
    return servers["echo"]


@pytest.fixture(scope="module")
def client(servers: dict[str, Any]) -> httpx.Client:
    return servers["client"]


def send(client: httpx.Client, server: Any, body: bytes, content_type: str | bytes | None, **headers: str | bytes) -> httpx.Response:
    sent: dict[str, str | bytes] = {"Authorization": API_KEY, **headers}
    if content_type is not None:
        sent["Content-Type"] = content_type
    request = client.build_request("POST", server.url + "/predict", content=body, headers=sent)
    return client.send(request)


def check(response: httpx.Response) -> dict[str, Any]:
    """Whatever was sent: no 5xx, a JSON body, an error body on errors, a valid
    envelope on 200, never a traceback."""
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert not TRACEBACK.search(response.text), response.text
    body = response.json()
    assert uuid.UUID(body["run_id"]).version == 4
    if response.status_code == 200:
        assert set(body) == {"result", "run_id", "run_time_ms", "prediction_ids"}
        assert isinstance(body["result"], list) and body["run_time_ms"] >= 0
        assert len(body["prediction_ids"]) == len(body["result"])
        assert all(HEX32.match(i) for i in body["prediction_ids"])
    else:
        assert set(body) == {"error", "run_id"}
        assert isinstance(body["error"]["code"], str) and body["error"]["code"]
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


# -- strategies ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=25,
)
# Bodies that look like JSON or a request envelope more often than random values do.
json_bodies = st.one_of(
    json_values,
    st.lists(json_values, max_size=6),
    st.fixed_dictionaries({"data": json_values}, optional={"parameters": json_values}),
    st.fixed_dictionaries({"data": st.lists(json_values, max_size=4)}, optional={"parameters": st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3)}),
)

JSON_TYPES = ["application/json", "application/json; charset=utf-8", "application/problem+json", None]
SAFE_TEXT = st.text(st.characters(codec="utf-8", exclude_characters='"\\/\r\n;', exclude_categories=("Cc", "Cs")), min_size=1, max_size=12)
PART_TYPES = st.sampled_from(["application/octet-stream", "image/png", "text/plain; charset=latin-1", "application/json", "x-custom/thing"])
BOUNDARIES = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'()+_,-.=", min_size=16, max_size=60)


def expected_json(value: Any) -> tuple[int, Any]:
    """What the echo server answers for this JSON body: (status, data)."""
    if isinstance(value, list):
        return 200, value
    if isinstance(value, dict) and "data" in value:
        parameters = value.get("parameters")
        if isinstance(value["data"], list) and (parameters is None or isinstance(parameters, dict)):
            return 200, value["data"]
    return 400, None


# -- JSON ------------------------------------------------------------------------------


@FUZZ
@given(value=json_bodies, content_type=st.sampled_from(JSON_TYPES), ascii_only=st.booleans())
def test_random_json_round_trips_or_is_a_400(client: httpx.Client, echo: Any, value: Any, content_type: str | None, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    response = send(client, echo, body, content_type)
    answer = check(response)
    status, data = expected_json(value)
    assert response.status_code == status, response.text
    if status == 200:
        assert answer["result"] == [data, []]
    else:
        assert answer["error"]["code"] == "bad_shape"


@FUZZ
@given(body=st.binary(max_size=400), content_type=st.sampled_from([*JSON_TYPES, "multipart/form-data; boundary=xyz", "multipart/form-data"]))
def test_random_bytes(client: httpx.Client, echo: Any, body: bytes, content_type: str | None) -> None:
    response = send(client, echo, body, content_type)
    check(response)
    assert response.status_code in (200, 400)
    if content_type is None or "json" in content_type:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            assert response.status_code == 400 and response.json()["error"]["code"] == "bad_json"
        else:
            assert response.status_code == expected_json(parsed)[0]


@FUZZ
@given(text=st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")) | st.sampled_from([b"[" * 5000, b"{" * 5000, b"[1e999]", b"[NaN, -Infinity]", b"[" + b"1" * 5000 + b"]"]))
def test_json_like_text(client: httpx.Client, echo: Any, text: bytes) -> None:
    response = send(client, echo, text, "application/json")
    check(response)
    assert response.status_code in (200, 400)


# -- multipart ----------------------------------------------------------------------------

file_parts = st.lists(
    st.tuples(
        SAFE_TEXT.filter(lambda name: name not in ("data", "parameters")),  # field name: any
        SAFE_TEXT,  # filename
        PART_TYPES,
        st.binary(max_size=300),
    ),
    max_size=5,
)


def multipart(boundary: str, parts: list[tuple[str, str | None, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, content_type, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        head = f"Content-Disposition: {disposition}\r\n" + (f"Content-Type: {content_type}\r\n" if content_type else "")
        out += f"--{boundary}\r\n{head}\r\n".encode() + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


@FUZZ
@given(
    boundary=BOUNDARIES,
    data=st.none() | json_values.map(json.dumps) | st.text(max_size=30),
    parameters=st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3).map(json.dumps) | st.text(max_size=10),
    files=file_parts,
    data_first=st.booleans(),
)
def test_random_well_formed_multipart(client: httpx.Client, echo: Any, boundary: str, data: str | None, parameters: str | None, files: list[tuple[str, str, str, bytes]], data_first: bool) -> None:
    fields: list[tuple[str, str | None, str | None, bytes]] = []
    if data is not None:
        fields.append(("data", None, None, data.encode()))
    if parameters is not None:
        fields.append(("parameters", None, None, parameters.encode()))
    uploads: list[tuple[str, str | None, str | None, bytes]] = list(files)
    body = multipart(boundary, fields + uploads if data_first else uploads + fields)
    assume(all(f"\r\n--{boundary}".encode() not in content for *_, content in uploads + fields))
    response = send(client, echo, body, f"multipart/form-data; boundary={boundary}")
    answer = check(response)

    def parsed(text: str | None) -> Any:
        try:
            return json.loads(text) if text is not None else None
        except ValueError:
            return ValueError

    data_value, parameters_value = parsed(data), parsed(parameters)
    ok = (data is None or isinstance(data_value, list)) and (
        parameters is None or isinstance(parameters_value, dict)
    )
    if not ok:
        assert response.status_code == 400, response.text
        return
    assert response.status_code == 200, response.text
    described = [[name_of(filename), content_type, len(content), hashlib.sha256(content).hexdigest()] for _, filename, content_type, content in files]
    assert answer["result"] == [data_value if data is not None else [], described]


def name_of(filename: str) -> str:
    return os.path.basename(filename.replace("\\", "/"))


def mutate(body: bytes, how: str, where: int, junk: bytes) -> bytes:
    at = where % (len(body) + 1)
    if how == "truncate":
        return body[:at]
    if how == "delete":
        return body[:at] + body[at + 1 + len(junk) :]
    if how == "insert":
        return body[:at] + junk + body[at:]
    if how == "replace":
        return body[:at] + junk + body[at + len(junk) :]
    return body.replace(b"\r\n", b"\n")


@FUZZ
@given(
    boundary=BOUNDARIES,
    files=file_parts,
    how=st.sampled_from(["truncate", "delete", "insert", "replace", "newlines"]),
    where=st.integers(min_value=0),
    junk=st.binary(min_size=1, max_size=20) | st.sampled_from([b"--", b"\r\n", b"\r\n\r\n", b'"', b";", b"--\r\n"]),
    header_boundary=st.none() | BOUNDARIES,
)
def test_broken_multipart(client: httpx.Client, echo: Any, boundary: str, files: list[tuple[str, str, str, bytes]], how: str, where: int, junk: bytes, header_boundary: str | None) -> None:
    body = mutate(multipart(boundary, [("data", None, None, b"[1]"), *files]), how, where, junk)
    content_type = f"multipart/form-data; boundary={header_boundary or boundary}"
    response = send(client, echo, body, content_type)
    check(response)
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.json()["result"][0] in ([1], [])


@FUZZ
@given(boundary=BOUNDARIES, files=file_parts, cut=st.integers(min_value=0))
def test_a_truncated_multipart_body_is_always_a_400(client: httpx.Client, echo: Any, boundary: str, files: list[tuple[str, str, str, bytes]], cut: int) -> None:
    body = multipart(boundary, [("data", None, None, b"[1]"), *files])
    assume(all(f"\r\n--{boundary}".encode() not in content for *_, content in files))
    cut %= len(body) - 2  # everything short of the final "--boundary--"
    response = send(client, echo, body[:cut], f"multipart/form-data; boundary={boundary}")
    check(response)
    assert response.status_code == 400, (cut, len(body), response.text)


@FUZZ
@given(parts=st.lists(st.tuples(st.sampled_from(["files", "file0", "file1", "x"]), st.binary(max_size=64)), min_size=1, max_size=8))
def test_multipart_from_a_real_client_keeps_order(client: httpx.Client, echo: Any, parts: list[tuple[str, bytes]]) -> None:
    files = [(field, (f"f{index}.bin", content, "application/octet-stream")) for index, (field, content) in enumerate(parts)]
    request = client.build_request("POST", echo.url + "/predict", data={"data": "[null]"}, files=files, headers={"Authorization": API_KEY})
    answer = check(client.send(request))
    assert [row[0] for row in answer["result"][1]] == [f"f{i}.bin" for i in range(len(parts))]
    assert [row[3] for row in answer["result"][1]] == [hashlib.sha256(content).hexdigest() for _, content in parts]


# -- headers --------------------------------------------------------------------------------

header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60).map(str.strip)


def media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


@FUZZ
@given(content_type=header_text | st.sampled_from(["application/json", "Application/JSON ; q=1", "text/plain", "multipart/form-data", "foo+json"]).flatmap(lambda base: st.just(base) | header_text.map(lambda extra: base + ";" + extra)))
def test_random_content_types(client: httpx.Client, echo: Any, content_type: str) -> None:
    response = send(client, echo, b"[1, 2]", content_type.encode("latin-1"))
    answer = check(response)
    kind = media_type(content_type)
    if kind in ("", "application/json") or kind.endswith("+json"):
        assert response.status_code == 200 and answer["result"] == [[1, 2], []]
    elif kind == "multipart/form-data":
        assert response.status_code == 400 and answer["error"]["code"] == "bad_form"
    else:
        assert response.status_code == 415 and answer["error"]["code"] == "unsupported_media_type"


@FUZZ
@given(key=header_text)
def test_random_keys_are_401(client: httpx.Client, echo: Any, key: str) -> None:
    assume(key not in (API_KEY, f"Bearer {API_KEY}") and key.partition(" ")[2].strip() != API_KEY)
    response = send(client, echo, b"[1]", "application/json", Authorization=key.encode("latin-1"))
    assert check(response)["error"]["code"] == "unauthorized"
    assert response.status_code == 401


@FUZZ
@given(request_id=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80))
def test_request_ids_are_echoed(client: httpx.Client, echo: Any, request_id: str) -> None:
    response = send(client, echo, b"[1]", "application/json", **{"X-Request-ID": request_id})
    check(response)
    assert response.headers["x-request-id"] == request_id


# -- images through the digits example's Pillow hook ---------------------------------------


def three_png(examples: Path) -> bytes:
    return (examples / "digits" / "samples" / "three.png").read_bytes()


def png_variants(seed_png: bytes) -> st.SearchStrategy[bytes]:
    def flip(positions: list[tuple[int, int]]) -> bytes:
        out = bytearray(seed_png)
        for at, value in positions:
            out[at % len(out)] = value
        return bytes(out)

    return st.one_of(
        st.binary(max_size=300),
        st.integers(0, len(seed_png)).map(lambda cut: seed_png[:cut]),
        st.lists(st.tuples(st.integers(0), st.integers(0, 255)), min_size=1, max_size=8).map(flip),
        st.binary(max_size=64).map(lambda junk: seed_png[:8] + junk),
    )


@pytest.fixture(scope="module")
def digits(servers: dict[str, Any]) -> Any:
    return servers["digits"]


@FUZZ
@given(data=st.data())
def test_uploads_that_are_not_images_are_422_never_500(client: httpx.Client, digits: Any, examples: Path, data: st.DataObject) -> None:
    content = data.draw(png_variants(three_png(examples)))
    request = client.build_request("POST", digits.url + "/predict", data={"data": "[null]"}, files={"files": ("x.png", content, "image/png")}, headers={"Authorization": API_KEY})
    response = client.send(request)
    answer = check(response)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        assert len(answer["result"]) == 1 and isinstance(answer["result"][0], int)
    else:
        assert answer["error"]["code"] == "invalid_input"


def test_a_real_image_still_works(client: httpx.Client, digits: Any) -> None:
    image = Image.new("L", (8, 8), 0)
    out = io.BytesIO()
    image.save(out, "PNG")
    request = client.build_request("POST", digits.url + "/predict", data={"data": "[null]"}, files={"files": ("blank.png", out.getvalue())}, headers={"Authorization": API_KEY})
    response = client.send(request)
    assert response.status_code == 200 and isinstance(response.json()["result"][0], int)


# -- afterwards -----------------------------------------------------------------------------


def test_no_traceback_or_internal_error_in_the_logs(echo: Any, digits: Any) -> None:
    """Runs last: nothing thrown at the servers above made them log a traceback."""
    for server in (echo, digits):
        logs = server.logs()
        assert "Traceback" not in logs, logs[-3000:]
        assert '"event":"internal_error"' not in logs
        assert server.process.poll() is None

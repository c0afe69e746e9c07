"""The wire format (DESIGN §3): request bodies in, envelopes and errors out.

Bodies are read as a stream and counted while they arrive, so a request over
`max_body_mb` is refused as soon as it crosses the limit. Multipart bodies go
through Starlette's streaming parser; file parts spool to disk past 1 MiB.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from .errors import BadRequest, PayloadTooLarge, ServerError, UnsupportedMediaType
from .files import UploadedFile

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]  # the ASGI receive channel


class Request:
    """What a prediction needs from an HTTP request."""

    __slots__ = ("data", "files", "parameters")

    def __init__(self, data: Any, parameters: dict[str, Any], files: list[UploadedFile]) -> None:
        self.data = data
        self.parameters = parameters
        self.files = files

    def close(self) -> None:
        for upload in self.files:
            upload.close()


async def chunks(receive: Receive, limit: int) -> AsyncGenerator[bytes, None]:
    """The body as it arrives, read straight from the ASGI channel and refused as soon
    as it passes `limit`."""
    received = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes (server.max_body_mb)")
        if chunk:
            yield chunk


def check_length(content_length: bytes | None, limit: int) -> None:
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise PayloadTooLarge(
            f"request body of {content_length.decode()} bytes is over the limit of {limit} bytes (server.max_body_mb)"
        )


def media_type(content_type: bytes | None) -> str:
    return (content_type or b"").decode("latin-1").partition(";")[0].strip().lower()


def is_json(kind: str) -> bool:
    return kind in ("", "application/json") or kind.endswith("+json")


async def read_request(content_type: bytes | None, content_length: bytes | None, receive: Receive,
                       limit: int) -> Request:
    """The request's data, parameters and files, from its two headers and its body."""
    kind = media_type(content_type)
    if kind == "multipart/form-data":
        check_length(content_length, limit)
        headers = Headers(raw=[(b"content-type", content_type or b"")])
        return await read_form(headers, chunks(receive, limit), limit)
    if is_json(kind):
        check_length(content_length, limit)
        parts = [chunk async for chunk in chunks(receive, limit)]
        # Most bodies come in one piece: parse it as it is, without a copy.
        return from_json_body(parts[0] if len(parts) == 1 else b"".join(parts))
    raise UnsupportedMediaType(
        f"content type {kind!r} is not accepted; send application/json or multipart/form-data"
    )


def parse_json(text: bytes | bytearray | str, what: str, code: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}"[:300], code) from None


def from_json_body(body: bytes | bytearray) -> Request:
    if not body or body.isspace():
        raise BadRequest("the body is empty; send the data list as JSON", "bad_json")
    payload = parse_json(body, "the body", "bad_json")
    if isinstance(payload, dict):
        if "data" not in payload:
            raise BadRequest('a JSON object body needs a "data" key: {"data": [...], "parameters": {...}}', "bad_shape")
        return Request(check_data(payload["data"]), check_parameters(payload.get("parameters")), [])
    return Request(check_data(payload), {}, [])


def check_data(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise BadRequest(f"data must be a JSON list, got {type(data).__name__}", "bad_shape")
    return data


def check_parameters(parameters: Any) -> dict[str, Any]:
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise BadRequest("parameters must be a JSON object", "bad_shape")
    return parameters


class FormParser(MultiPartParser):
    """Starlette's streaming parser, which also checks that the closing
    boundary arrived: a body cut short must not pass as a shorter form."""

    def __init__(self, headers: Headers, stream: AsyncIterator[bytes], max_part_size: int) -> None:
        super().__init__(headers, self.to_the_end(stream), max_part_size=max_part_size)
        self.complete = False

    async def to_the_end(self, stream: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        async for chunk in stream:
            yield chunk
        if not self.complete:  # raised inside parse(), which then closes the spooled files
            raise MultiPartException("the body ends before the closing boundary (--BOUNDARY--).")

    def on_end(self) -> None:
        self.complete = True


async def read_form(headers: Headers, stream: AsyncIterator[bytes], limit: int) -> Request:
    parser = FormParser(headers, stream, max_part_size=limit)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(f"malformed multipart body: {exc.message}", "bad_form") from None
    fields: dict[str, str] = {}
    files: list[UploadedFile] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            files.append(UploadedFile(value.file, value.filename or name, value.content_type or "application/octet-stream"))
        else:
            fields.setdefault(name, value)
    if "data" not in fields and not files:
        raise BadRequest("the form has neither a 'data' field nor file parts", "bad_form")
    try:
        data = check_data(parse_json(fields["data"], "the form's data field", "bad_form")) if "data" in fields else []
        parameters = check_parameters(
            parse_json(fields["parameters"], "the form's parameters field", "bad_form") if "parameters" in fields else None
        )
    except ServerError:
        for upload in files:
            upload.close()
        raise
    return Request(data, parameters, files)


def _jsonable(value: Any) -> Any:
    """json.dumps fallback for what models return: arrays, tensors, numpy scalars, Docs."""
    if hasattr(value, "tolist"):  # ndarray, numpy scalar, torch tensor
        return value.tolist()
    if hasattr(value, "to_json"):  # spaCy Doc
        return value.to_json()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"a {type(value).__name__} cannot be returned as JSON; convert it in a post hook")


def as_rows(output: Any) -> list[Any]:
    """The result is always a list: one entry per row."""
    if isinstance(output, list):
        return output
    if hasattr(output, "tolist"):
        rows = output.tolist()
        return rows if isinstance(rows, list) else [rows]
    if isinstance(output, tuple):
        return list(output)
    return [output]


# Made once: json.dumps with options builds a new encoder on every call.
_strict = json.JSONEncoder(default=_jsonable, allow_nan=False, separators=(",", ":"))
_lenient = json.JSONEncoder(default=_jsonable, separators=(",", ":"))


def dumps(payload: Any) -> bytes:
    try:
        return _strict.encode(payload).encode()
    except ValueError:  # NaN or infinity: JSON has no spelling for them, null says "no number"
        return _lenient.encode(_finite(payload)).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if hasattr(value, "tolist"):
        return _finite(value.tolist())
    return value


def envelope(result: list[Any], run_id: str, run_time_ms: float) -> dict[str, Any]:
    return {
        "result": result,
        "run_id": run_id,
        "run_time_ms": run_time_ms,
        "prediction_ids": [os.urandom(16).hex() for _ in result],  # 128 random bits, as uuid4 has
    }


def error_body(error: ServerError, run_id: str) -> bytes:
    return dumps({"error": {"code": error.code, "message": error.message}, "run_id": run_id})

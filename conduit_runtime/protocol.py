"""The shapes of /predict (DESIGN §3): a JSON body or a form's fields become a
Request; results become envelopes, errors their JSON bodies. Pure functions
of bytes and objects: reading the body is predict/body.py's, and all of this
runs in a worker thread, off the event loop."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from typing import Any

from .errors import BadRequest, ServerError
from .files import UploadedFile
from .outputs import as_data_url


class Request:
    """What a prediction needs from an HTTP request."""

    __slots__ = ("data", "files", "parameters")

    def __init__(self, data: Any, parameters: dict[str, Any], files: list[UploadedFile]) -> None:
        self.data = data
        self.parameters = parameters
        self.files = files


def parse_json(text: bytes | bytearray | str, what: str, code: str) -> Any:
    try:
        return loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}"[:300], code) from None


# Past this size a body is parsed a list item at a time. json.loads is one C call that
# holds the GIL throughout, so a 40 MB body would stop the event loop (and /health)
# for a second or more even from a worker thread; between items the loop gets its turn.
PIECEWISE = 1 << 20
_decoder = json.JSONDecoder()
_space = re.compile(r"[ \t\n\r]*")


def loads(text: bytes | bytearray | str) -> Any:
    if len(text) < PIECEWISE:
        return json.loads(text)
    if not isinstance(text, str):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    start = _skip(text, 0)
    value, end = _array(text, start) if text.startswith("[", start) else _object(text, start)
    if _skip(text, end) != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def _skip(text: str, at: int) -> int:
    return _space.match(text, at).end()  # type: ignore[union-attr]  # "*" always matches


def _array(text: str, at: int) -> tuple[list[Any], int]:
    items: list[Any] = []

    def item(at: int) -> int:
        value, end = _decoder.raw_decode(text, at)
        items.append(value)
        return end

    return items, _members(text, at, "]", item)


def _object(text: str, at: int) -> tuple[Any, int]:
    """The top-level object ({"data": [...], "parameters": {...}}), its lists item by item."""
    if not text.startswith("{", at):
        return _decoder.raw_decode(text, at)
    members: dict[str, Any] = {}

    def member(at: int) -> int:
        if not text.startswith('"', at):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, at)
        key, at = _decoder.raw_decode(text, at)
        at = _skip(text, at)
        if not text.startswith(":", at):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, at)
        at = _skip(text, at + 1)
        members[key], at = _array(text, at) if text.startswith("[", at) else _decoder.raw_decode(text, at)
        return at

    return members, _members(text, at, "}", member)


def _members(text: str, at: int, close: str, read: Callable[[int], int]) -> int:
    """Read the comma-separated members of the list or object opened at `at`, each with
    `read(start) -> end`; the index after its `close`."""
    at = _skip(text, at + 1)
    if text.startswith(close, at):
        return at + 1
    while True:
        at = _skip(text, read(at))
        if text.startswith(",", at):
            at = _skip(text, at + 1)
        elif text.startswith(close, at):
            return at + 1
        else:
            raise json.JSONDecodeError("Expecting ',' delimiter", text, at)


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


def from_form(fields: dict[str, str], files: list[UploadedFile]) -> Request:
    """A form's `data` (a JSON string of the list) and optional `parameters`, and its files.
    Without `data` the data is [], as an empty JSON list would be: the model or its pre
    hook says whether that will do."""
    data = check_data(parse_json(fields["data"], "the form's data field", "bad_form")) if "data" in fields else []
    parameters = check_parameters(
        parse_json(fields["parameters"], "the form's parameters field", "bad_form") if "parameters" in fields else None
    )
    return Request(data, parameters, files)


def _jsonable(value: Any) -> Any:
    """json.dumps fallback for what models return: arrays, tensors, numpy scalars, Docs,
    and files (bytes, PIL images, paths) as data URLs."""
    if hasattr(value, "tolist"):  # ndarray, numpy scalar, torch tensor
        return value.tolist()
    url = as_data_url(value)
    if url is not None:
        return url
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


# A result longer than this is encoded a slice of rows at a time, for the reason
# large bodies are parsed piecewise: one C call over it all would hold the GIL.
ROWS_AT_ONCE = 10_000


def dumps_envelope(answer: dict[str, Any]) -> bytes:
    """The envelope as JSON bytes."""
    rows, ids = answer["result"], answer["prediction_ids"]
    if len(rows) <= ROWS_AT_ONCE:
        return dumps(answer)
    rest = dumps({"run_id": answer["run_id"], "run_time_ms": answer["run_time_ms"]})[1:-1]
    return b'{"result":' + _dumps_list(rows) + b"," + rest + b',"prediction_ids":' + _dumps_list(ids) + b"}"


def _dumps_list(items: list[Any]) -> bytes:
    pieces = (dumps(items[at:at + ROWS_AT_ONCE])[1:-1] for at in range(0, len(items), ROWS_AT_ONCE))
    return b"[" + b",".join(pieces) + b"]"


def envelope(result: list[Any], run_id: str, run_time_ms: float) -> dict[str, Any]:
    return {
        "result": result,
        "run_id": run_id,
        "run_time_ms": run_time_ms,
        "prediction_ids": [os.urandom(16).hex() for _ in result],  # 128 random bits, as uuid4 has
    }


def error_body(error: ServerError, run_id: str, debug: bool = False) -> bytes:
    detail = {"code": error.code, "message": error.message}
    if debug and error.detail:  # `conduit serve --debug`: local development only
        detail["detail"] = error.detail
    return dumps({"error": detail, "run_id": run_id})

"""JSON in and out, for every wire format: bodies parsed a list item at a time past
PIECEWISE, and results encoded with what models return (arrays, tensors, numpy scalars,
spaCy Docs, files as data URLs). Pure functions of bytes and objects."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from ..errors import BadRequest
from .outputs import as_data_url


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

"""The shapes of /predict (DESIGN §3): a JSON body or a form's fields become a
Request; results become envelopes, errors their JSON bodies. Pure functions
of bytes and objects: reading the body is http/body.py's, and all of this
runs in a worker thread, off the event loop."""

from __future__ import annotations

import os
from typing import Any

from ..errors import BadRequest, ServerError
from ..files import UploadedFile
from .codec import dumps, parse_json

# A form's text fields: every other part, whatever its name, is a file (DESIGN §3).
FORM_FIELDS = frozenset(("data", "parameters", "webhook", "webhook_endpoint", "webhook_events_filter"))


class Request:
    """What a prediction needs from an HTTP request."""

    __slots__ = ("data", "files", "parameters")

    def __init__(self, data: Any, parameters: dict[str, Any], files: list[UploadedFile]) -> None:
        self.data = data
        self.parameters = parameters
        self.files = files


def parse_body(body: bytes | bytearray) -> Any:
    """A JSON body as its value (the one parse of it: the value is what every later step reads)."""
    if not body or body.isspace():
        raise BadRequest("the body is empty; send the data list as JSON", "bad_json")
    return parse_json(body, "the body", "bad_json")


def from_payload(payload: Any) -> Request:
    """A JSON body's value: the data list, or {"data": [...], "parameters": {...}}."""
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

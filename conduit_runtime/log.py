"""The server's log: one JSON object per line on stdout, for log collectors."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from json.encoder import encode_basestring_ascii as quote
from typing import Any


def log(record: dict[str, Any]) -> None:
    write_line(json.dumps(record, separators=(",", ":"), default=str))


# The longest X-Request-ID a log line keeps: the header is the client's, of any length.
REQUEST_ID_CHARS = 200


def request_id_of(header: bytes | None, run_id: str) -> str:
    """The id a request's log lines carry: the client's X-Request-ID (its first
    REQUEST_ID_CHARS characters), else the run_id the server made for it."""
    return header.decode("latin-1")[:REQUEST_ID_CHARS] if header else run_id


def log_prediction(run_id: str, prediction_ids: list[str], status: int, run_time_ms: float,
                   failure: dict[str, Any] | None = None, request_id: str | None = None) -> None:
    if failure is None:
        write_line(prediction_line(run_id, prediction_ids, status, run_time_ms, request_id or run_id))
    else:
        log({"event": "prediction", "run_id": run_id, "request_id": request_id or run_id,
             "prediction_ids": prediction_ids, "status": status, "run_time_ms": run_time_ms, **failure})


def prediction_line(run_id: str, prediction_ids: list[str], status: int, run_time_ms: float, request_id: str) -> str:
    """The line of a prediction that did not fail, formatted by hand: it is on the hot
    path, and every value but the request id is already safe JSON (a UUID, hex ids,
    numbers). The request id is the client's header bytes: escaped by json's C encoder
    (quotes, backslashes, control characters), so it can neither end the string nor add a field."""
    ids = ",".join(f'"{id_}"' for id_ in prediction_ids)
    return (f'{{"event":"prediction","run_id":"{run_id}","request_id":{quote(request_id)},'
            f'"prediction_ids":[{ids}],"status":{status},"run_time_ms":{run_time_ms}}}')


def exception_record(exc: BaseException) -> dict[str, Any]:
    """What the log keeps of an exception: its type, message and traceback (the
    exception a user's code raised, when ours wraps it)."""
    cause = exc.__cause__ or exc
    return {
        "exception": f"{type(cause).__module__}.{type(cause).__qualname__}".removeprefix("builtins."),
        "exception_message": str(cause)[:2000],
        "traceback": "".join(traceback.format_exception(cause))[-8000:],
    }


def write_line(line: str) -> None:
    # One unbuffered write a line: nothing waits in a buffer, and lines never interleave.
    try:
        os.write(sys.stdout.fileno(), (line + "\n").encode())
    except (OSError, ValueError):  # no usable stdout (closed, or replaced by an object without a file)
        with contextlib.suppress(Exception):
            sys.stdout.write(line + "\n")

"""The server's log: one JSON object per line on stdout, for log collectors."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from typing import Any


def log(record: dict[str, Any]) -> None:
    write_line(json.dumps(record, separators=(",", ":"), default=str))


def log_prediction(run_id: str, prediction_ids: list[str], status: int, run_time_ms: float,
                   failure: dict[str, Any] | None = None) -> None:
    if failure is None:
        write_line(prediction_line(run_id, prediction_ids, status, run_time_ms))
    else:
        log({"event": "prediction", "run_id": run_id, "prediction_ids": prediction_ids, "status": status,
             "run_time_ms": run_time_ms, **failure})


def prediction_line(run_id: str, prediction_ids: list[str], status: int, run_time_ms: float) -> str:
    """The line of a prediction that did not fail, formatted by hand: it is on the hot
    path, and every value is already safe JSON (a UUID, hex ids, numbers)."""
    ids = ",".join(f'"{id_}"' for id_ in prediction_ids)
    return (f'{{"event":"prediction","run_id":"{run_id}","prediction_ids":[{ids}],'
            f'"status":{status},"run_time_ms":{run_time_ms}}}')


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

"""An example with `stream: true`: its answer to `Accept: text/event-stream` read as
Server-Sent Events (httpx-sse): `output` events, one per chunk, then one `completed`
with the envelope, whose result is the chunks joined (one string when all are
strings, else the list), or an `error` event with the error body."""

from __future__ import annotations

import json
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError

from .calls import CheckFailed

EVENTS = {"output", "completed", "error"}
ACCEPT_EVENTS = {"Accept": "text/event-stream"}


def read_stream(response: httpx.Response) -> tuple[Any, list[Any]]:
    """The `completed` envelope and the `output` chunks, or CheckFailed saying what is wrong."""
    try:
        events = [(sse.event, sse.data) for sse in EventSource(response).iter_sse()]
    except SSEError as exc:
        raise CheckFailed(f"not an event stream: {exc}", response.text[:2000]) from None
    if not events:
        raise CheckFailed("the event stream ended without an event")
    parsed: list[tuple[str, Any]] = []
    for name, data in events:
        if name not in EVENTS:
            raise CheckFailed(f"unknown event {name!r} (expected output, completed or error)", data[:2000])
        try:
            parsed.append((name, json.loads(data)))
        except ValueError:
            raise CheckFailed(f"the data of an event {name!r} is not JSON", data[:2000]) from None
    last, body = parsed[-1]
    if last == "error":
        error = body.get("error") if isinstance(body, dict) else None
        said = f"{error.get('code')}: {error.get('message')}" if isinstance(error, dict) else repr(body)[:200]
        raise CheckFailed(f"the stream ended with an error event: {said}", json.dumps(body)[:2000])
    before = [name for name, _ in parsed[:-1]]
    if last != "completed" or any(name != "output" for name in before):
        raise CheckFailed(f"expected output events then one completed, got {[*before, last]}"[:300])
    chunks = [data for _, data in parsed[:-1]]
    return body, chunks


def joined_problem(result: Any, chunks: list[Any]) -> str | None:
    """Whether `completed`'s result is the chunks joined, as the server promises."""
    if not chunks:
        return None  # a result that was not chunked: one completed event
    joined = ["".join(chunks)] if all(isinstance(chunk, str) for chunk in chunks) else chunks
    if result != joined:
        return f"completed's result is not the {len(chunks)} output chunks joined"
    return None

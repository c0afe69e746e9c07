"""Parse → run → serialize: the part of a prediction that is CPU work, all of it
in a worker thread so that the event loop keeps answering (/health within a
probe's timeout, whatever the size of a body or a result).

For a flow of plain functions this is one hop to a thread. An `async def` hook
or model is awaited on the event loop between hops, without holding a thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..cancellation import current, within
from ..errors import PREDICTION_FAILED, ModelFailed
from ..log import prediction_line
from ..model.calls import Plan, close_streams
from ..model.flow import Flow, drive, is_stream
from ..wire.predict import Request, as_rows, dumps_envelope, envelope, from_form, from_payload, parse_body
from .body import UNPARSED, Body


class Stream:
    """A result that comes in chunks, for the caller to send as events."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.is_async = hasattr(source, "__aiter__")


class Job:
    content_type = b"application/json"  # of a successful answer
    headers: tuple[tuple[bytes, bytes], ...] = ()  # more header fields of a successful answer

    def __init__(self, flow: Flow, body: Body, run_id: str, arrived: float, streaming: bool = False,
                 request_id: str | None = None) -> None:
        self.flow = flow
        self.streaming = streaming  # the client asked for events: a chunked result is not collected
        self.body: Body | None = body
        self.files = body.files
        self.run_id = run_id
        self.request_id = request_id or run_id  # in its log line (log.request_id_of)
        self.arrived = arrived
        self.plan: Plan | None = None
        self.log_line = ""  # of a success, made in the worker
        self.rows = 0  # of the result
        self.working: Future[Any] | None = None  # the worker's part while it runs
        # Set when the prediction should stop early (its client left, it timed out, or it
        # was cancelled); user code reads it as conduit_runtime.cancelled().
        self.cancel = threading.Event()

    # -- in a worker thread ----------------------------------------------------------
    def start(self) -> tuple[bool, Any]:
        request = self.parse()
        self.plan = self.flow.plan(request.data, request.files, request.parameters, collect=not self.streaming)
        return self.resume(None)

    def resume(self, value: Any) -> tuple[bool, Any]:
        """Run until the plan needs an async call (False, (call, args)), or the
        serialized answer (True, bytes), or a chunked result to stream (True, Stream)."""
        assert self.plan is not None
        done, value = drive(self.plan, value)
        if not done:
            return False, value
        if self.streaming and (is_stream(value) or hasattr(value, "__aiter__")):
            return True, Stream(value)
        return True, self.serialize(value)

    def parse(self) -> Request:
        body, self.body = self.body, None  # the raw JSON is dropped as soon as it is parsed
        assert body is not None
        if body.json is not None:
            return from_payload(parse_body(body.json) if body.payload is UNPARSED else body.payload)
        return from_form(body.fields, body.files)

    def serialize(self, output: Any) -> bytes:
        """The answer's bytes; its log line is made here too (for a long result, a long
        line), so that the event loop only writes it."""
        rows = as_rows(output)
        answer = envelope(rows, self.run_id, round((time.perf_counter() - self.arrived) * 1000, 3))
        try:
            content = dumps_envelope(answer)
        except (TypeError, OSError) as exc:  # a result JSON has no spelling for, or an output file not there
            raise ModelFailed(PREDICTION_FAILED, detail=str(exc)) from exc
        self.log_line = prediction_line(self.run_id, answer["prediction_ids"], 200, answer["run_time_ms"],
                                        self.request_id)
        self.rows = len(rows)
        return content

    def close(self) -> None:
        for upload in self.files:
            upload.close()

    # -- on the event loop ---------------------------------------------------------------
    async def run(self, pool: ThreadPoolExecutor) -> bytes | Stream:
        """The answer's bytes, or the Stream of a chunked result when streaming."""
        token = current.set(self.cancel)  # for `async def` user code, awaited in this task
        try:
            done, value = await self.hop(pool, self.start)
            while not done:
                call, args = value
                done, value = await self.hop(pool, self.resume, await call.call_async(*args))
        finally:
            current.reset(token)
        content: bytes | Stream = value
        return content

    async def hop(self, pool: ThreadPoolExecutor, fn: Any, *args: Any) -> tuple[bool, Any]:
        working = self.working = pool.submit(within, self.cancel, fn, *args)
        try:
            result: tuple[bool, Any] = await asyncio.wrap_future(working)
        except asyncio.CancelledError:  # the request ended while the worker ran: what it makes goes nowhere
            working.add_done_callback(drop)
            raise
        self.working = None
        return result


def drop(working: Future[Any]) -> None:
    """A hop that ended after its request did: a stream it made (which may hold its stage's
    lock, model/calls.py) is closed, so the stage does not stay locked."""
    if working.cancelled() or working.exception() is not None:
        return
    done, value = working.result()
    if done and isinstance(value, Stream):
        close_streams((value.source,))
    elif not done:
        close_streams(value[1])  # the arguments of the async call it led to

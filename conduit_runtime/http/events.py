"""Send, as Server-Sent Events, for a client that asks with `Accept: text/event-stream`:
one `output` event per chunk of a chunked result (a generator, sync or async), then
`completed` with the envelope (the chunks joined, as without events), or `error` with
the error body. A result that is not chunked is one `completed` event.

A client that goes away stops the generation: the generator is closed.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..cancellation import current, within
from ..errors import PREDICTION_FAILED, ModelFailed, ServerError, TimedOut, from_user_code
from ..model.flow import joined
from ..wire.codec import dumps
from ..wire.predict import error_body
from .body import Receive
from .job import Job, Stream

END = object()  # what next() and anext() give at the end of a stream
WHERE = "the result's stream"


async def send_events(send: Any, receive: Receive, job: Job, content: bytes | Stream, pool: ThreadPoolExecutor,
                      request_id: bytes, seconds_left: float, debug: bool) -> tuple[int, ServerError | None]:
    """Answer with events; the status and error to log (None: the client went away)."""
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-request-id", request_id),
    ]})
    error: ServerError | None = None
    try:
        async with asyncio.timeout(max(seconds_left, 0.001)):
            if isinstance(content, Stream):
                gone = await relay(send, receive, job, content, pool)
                if gone:
                    return 499, None  # nginx's "client closed request": nobody is left to answer
            else:
                await event(send, b"completed", content)
    except TimeoutError:
        error = TimedOut("the stream did not end within server.timeout_s")
    except ServerError as failed:
        error = failed
    if error is not None:
        await event(send, b"error", error_body(error, job.run_id, debug))
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    return (200, None) if error is None else (error.status, error)


async def relay(send: Any, receive: Receive, job: Job, stream: Stream, pool: ThreadPoolExecutor) -> bool:
    """Each chunk as an `output` event, then `completed`; True when the client went away."""
    source = stream.source
    chunks: list[Any] = []
    token = current.set(job.cancel)  # the generator's code sees cancelled(), here and in the workers
    gone = asyncio.ensure_future(receive())  # the body is read: the next message is the disconnect
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            if stream.is_async:
                pending = asyncio.ensure_future(anext(source, END))
            else:
                pending = asyncio.wrap_future(pool.submit(within, job.cancel, next, source, END))
            await asyncio.wait((pending, gone), return_when=asyncio.FIRST_COMPLETED)
            if not pending.done():
                return True
            try:
                chunk = pending.result()
            except ServerError:
                raise
            except Exception as exc:
                raise from_user_code(exc, WHERE) from exc
            pending = None
            if chunk is END:
                break
            chunks.append(chunk)
            try:
                data = dumps(chunk)
            except TypeError as exc:
                raise ModelFailed(PREDICTION_FAILED, detail=f"{WHERE}: {exc}") from exc
            await event(send, b"output", data)
        answer = await asyncio.wrap_future(pool.submit(job.serialize, joined(chunks)))
        await event(send, b"completed", answer)
        return False
    finally:
        gone.cancel()
        if pending is not None and not pending.done():
            # The client left or the time is up while a chunk is being made: cancelled() turns
            # true before the generator is closed, so that a chunk that looks at it ends early.
            job.cancel.set()
        try:
            await close(source, pending, stream.is_async)
        finally:
            current.reset(token)


async def close(source: Any, pending: asyncio.Future[Any] | None, is_async: bool) -> None:
    """Stop the generator: a chunk still being made is waited for (a thread cannot be
    interrupted) or cancelled (a coroutine can), then the generator is closed. Closing
    a model's stream frees its stage's lock (model/calls.py: Held), which never blocks."""
    if pending is not None and not pending.done():
        if is_async:
            pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
    try:
        if is_async and hasattr(source, "aclose"):
            await source.aclose()
        elif hasattr(source, "close"):
            source.close()
    except Exception:  # the generator's own clean-up failed: the answer is already decided
        pass


async def event(send: Any, name: bytes, data: bytes) -> None:
    await send({"type": "http.response.body", "body": b"event: " + name + b"\ndata: " + data + b"\n\n",
                "more_body": True})

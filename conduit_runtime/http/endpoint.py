"""POST /predict as a plain ASGI endpoint, in its stages:

    admit → read → parse → run → serialize → send

It reads the few headers it needs in one pass over the raw list and answers
with two ASGI messages, skipping the router and Request/Response objects that
every other route goes through. Every answer, error or not, is one JSON body,
one log line and one metrics sample.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import ClientDisconnect

from ..errors import NotReady, ServerError, TimedOut, Unauthorized, internal_error
from ..log import exception_record, log_prediction, request_id_of, write_line
from ..model.batch import BATCH_SIZE
from ..model.service import Service
from ..wire.predict import error_body
from .admission import Admission, Place
from .async_work import AsyncWork
from .body import Body, Receive, budgeted, read_body
from .disconnect import DisconnectWatch
from .events import send_events
from .job import Job, Stream
from .metrics import Metrics

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def failure_of(error: ServerError | None) -> dict[str, Any] | None:
    """What the log line of a 5xx keeps: the code, our detail, and the exception under it
    (for a synchronous answer and an async prediction alike)."""
    if error is None or error.status < 500:
        return None
    return {"error": error.code, "detail": error.detail, **(exception_record(error) if error.__cause__ else {})}


class PredictEndpoint:
    streams = True  # answers Accept: text/event-stream with events

    def __init__(self, service: Service, admission: Admission, metrics: Metrics, key: bytes, debug: bool = False) -> None:
        self.service = service
        self.admission = admission
        self.metrics = metrics
        self.key = key
        self.debug = debug
        self.limit = service.spec.max_body_bytes
        self.timeout_s = service.spec.timeout_s
        self.jobs: AsyncWork | None = None  # async predictions (202), set by the app

    def authorize(self, header: bytes | None) -> None:
        if not self.key:
            return
        if not header:
            raise Unauthorized("send the API key: 'Authorization: <key>' or 'Authorization: Bearer <key>'")
        scheme, _, rest = header.partition(b" ")
        given = rest.strip() if scheme.lower() == b"bearer" else header.strip()
        if not hmac.compare_digest(given, self.key):
            raise Unauthorized("the API key is wrong")

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        arrived = time.perf_counter()
        run_id = str(uuid.uuid4())
        authorization = content_type = content_length = request_id = accept = prefer = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value
            elif name == b"x-request-id":
                request_id = value
            elif name == b"accept":
                accept = value
            elif name == b"prefer":
                prefer = value
        events = self.streams and accept is not None and b"text/event-stream" in accept
        logged_id = request_id_of(request_id, run_id)  # in every log line of this request
        job: Job | None = None
        failure = None
        accepted = ""  # the id of an async prediction (202)
        result: bytes | Stream
        try:
            self.authorize(authorization)
            if not self.service.ready:
                raise NotReady(self.service.problem)
            place = self.admission.admit()  # before a byte of the body: else 429 at once
            try:
                # timeout_s runs from arrival: reading the body and queueing count too.
                async with asyncio.timeout(self.timeout_s):
                    body = await self.read_body(scope, content_type, content_length,
                                                budgeted(receive, content_length, self.limit, place.hold))
                    if self.jobs is not None and await self.jobs.wanted(prefer, body):
                        result, accepted = await self.jobs.accept(body, run_id, logged_id)  # runs later: 202
                    else:
                        job = self.new_job(scope, body, run_id, arrived, events, logged_id)
                        await self.take_slot(place, receive)
                        watch = DisconnectWatch(job.cancel, receive)
                        try:
                            result = await job.run(self.service.pool)
                        finally:
                            watch.stop()
                if events and job is not None:  # the answer is begun: from here on every outcome is an event
                    left = self.timeout_s - (time.perf_counter() - arrived)
                    status, error = await send_events(send, receive, job, result, self.service.pool,
                                                      request_id or run_id.encode(), left, self.debug)
                    self.record(status, arrived, run_id, job if status == 200 else None, failure_of(error), logged_id)
                    return
            except TimeoutError:
                if job is not None:
                    job.cancel.set()  # a call still running may look at cancelled() and stop early
                raise TimedOut(f"no answer within server.timeout_s = {self.timeout_s:g} s") from None
            finally:
                self.leave(place, job)
            assert isinstance(result, bytes)
            if job is not None and job.cancel.is_set():  # the client left while it ran: nobody is left to answer
                self.record(499, arrived, run_id, None, None, logged_id)
                return
            content, status = result, 202 if accepted else 200
        except ServerError as error:
            content, status = self.error_body(error, run_id), error.status
            failure = failure_of(error)
        except ClientDisconnect:
            return  # nobody is left to answer
        except Exception as exc:  # a bug of ours: still one JSON answer, never a traceback
            bug = internal_error(exc)
            content, status = self.error_body(bug, run_id), 500
            failure = failure_of(bug)
        self.record(status, arrived, run_id, job if status == 200 else None, failure, logged_id)
        headers = [
            (b"content-type", job.content_type if job is not None and status == 200 else b"application/json"),
            *(job.headers if job is not None and status == 200 else ()),
            (b"content-length", str(len(content)).encode()),
            (b"x-request-id", request_id or run_id.encode()),
        ]
        if accepted:
            headers += [(b"location", f"/predictions/{accepted}".encode()), (b"preference-applied", b"respond-async")]
        elif job is None:
            # Answered before the body was read (401, 413, 429, 503 …): the connection
            # cannot carry another request, and the client should stop sending.
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    # The protocol's parts, which the Open Inference Protocol's infer endpoint (v2.py) changes.
    async def read_body(self, scope: MutableMapping[str, Any], content_type: bytes | None,
                        content_length: bytes | None, receive: Receive) -> Body:
        return await read_body(content_type, content_length, receive, self.limit)

    def new_job(self, scope: MutableMapping[str, Any], body: Body, run_id: str, arrived: float, events: bool,
                request_id: str) -> Job:
        return Job(self.service.flow, body, run_id, arrived, streaming=events, request_id=request_id)  # type: ignore[arg-type]

    def error_body(self, error: ServerError, run_id: str) -> bytes:
        return error_body(error, run_id, self.debug)

    def record(self, status: int, arrived: float, run_id: str, done: Job | None, failure: dict[str, Any] | None,
               request_id: str) -> None:
        """The answer's metrics sample and log line (a success's line was made in the worker)."""
        elapsed_ms = round((time.perf_counter() - arrived) * 1000, 3)
        self.metrics.observe(status, elapsed_ms / 1000)
        batch_size = BATCH_SIZE.get()  # set when the request waited for a batched stage
        if batch_size is None and done is not None and self.service.flow is not None and self.service.flow.batched:
            batch_size = done.rows  # it found every batched stage idle and went alone (Batcher.try_now)
        if done is not None:
            write_line(done.log_line if batch_size is None else f'{done.log_line[:-1]},"batch_size":{batch_size}}}')
        elif batch_size is None:
            log_prediction(run_id, [], status, elapsed_ms, failure, request_id)
        else:
            log_prediction(run_id, [], status, elapsed_ms, {**(failure or {}), "batch_size": batch_size}, request_id)

    @staticmethod
    async def take_slot(place: Place, receive: Receive) -> None:
        """Wait for a running slot; a client that goes away meanwhile is not run at all.
        (Only a request that must wait watches its connection: the common case costs nothing.)"""
        if not place.admission.slots.locked():
            await place.run()
            return
        slot = asyncio.ensure_future(place.run())
        gone = asyncio.ensure_future(receive())  # the body is read: the next message is the disconnect
        try:
            await asyncio.wait((slot, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not slot.done():
                slot.cancel()
                await asyncio.gather(slot, return_exceptions=True)
            gone.cancel()
        if not place.running:
            raise ClientDisconnect()

    def leave(self, place: Place, job: Job | None) -> None:
        """Free the request's place and files, or, while its worker thread still runs
        (the request timed out), as soon as that thread ends."""
        working = job.working if job is not None else None
        if working is None or working.done():
            place.leave()
            if job is not None:
                job.close()
            return
        place.overdue()
        loop = asyncio.get_running_loop()

        def ended() -> None:
            place.leave_overdue()
            assert job is not None
            job.close()

        working.add_done_callback(lambda _: loop.call_soon_threadsafe(ended))

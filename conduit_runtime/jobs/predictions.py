"""Async predictions: `POST /predict` with `Prefer: respond-async` (or naming a webhook)
answers 202 at once; the work waits in the store (store.py, or redis_store.py), one dispatcher per
process runs it when a prediction slot is free (the same slots synchronous requests
take), and `GET /predictions/{id}` / `POST /predictions/{id}/cancel` read and change
it from any process sharing the store.

The prediction object is {id, status, created_at, started_at, completed_at, urls}
and, once it ended, the synchronous answer's keys (the envelope, or `error`), so a
finished prediction reads like the answer the request would have had.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import BadRequest, Overloaded, ServerError, TimedOut, internal_error
from ..http.admission import Admission
from ..http.body import Body
from ..http.endpoint import failure_of
from ..http.job import Job
from ..log import exception_record, log, log_prediction, write_line
from ..model.service import Service
from ..spec import ServerSpec
from ..wire.codec import dumps
from ..wire.predict import error_body
from .store import (
    CANCELED,
    EXHAUSTED,
    FAILED,
    HEARTBEAT_S,
    PROCESSING,
    STARTED,
    STARTING,
    SUCCEEDED,
    TERMINAL,
    Limits,
    MemoryStore,
    Record,
    Store,
)
from .webhook_options import may_name_webhook, names_webhook, webhook_options

if TYPE_CHECKING:
    from .webhooks import Webhooks


def now_iso() -> str:
    return datetime.now(tz=UTC).isoformat().replace("+00:00", "Z")


def urls(id_: str) -> dict[str, str]:
    return {"get": f"/predictions/{id_}", "cancel": f"/predictions/{id_}/cancel"}


def document(record: Record) -> bytes:
    """The prediction object as JSON bytes: the answer's own bytes are spliced in, never re-encoded."""
    head: dict[str, Any] = {
        "id": record.id, "status": record.status, "created_at": record.meta["created_at"],
        "started_at": record.started_at or None, "completed_at": record.completed_at or None,
        "urls": urls(record.id),
    }
    if not record.answer:
        head["run_id"] = record.meta["run_id"]
        return dumps(head)
    return dumps(head)[:-1] + b"," + record.answer[1:]


def open_webhooks(secret: str, allowed: tuple[str, ...]) -> Webhooks | None:
    """The webhook sender; None without a secret, and then its HTTP client and signer are
    never imported (an image that sends no webhooks does without them)."""
    if not secret:
        return None
    from .webhook_targets import Targets
    from .webhooks import Webhooks, signer

    sign = signer(secret)
    return None if sign is None else Webhooks(sign, Targets(allowed))


def open_store(spec: ServerSpec) -> Store:
    limits = Limits(spec.async_max_queue, spec.async_ttl_s, spec.async_max_results, spec.async_timeout_s,
                    spec.async_max_attempts)
    if spec.async_store.startswith("redis://"):
        from .redis_store import RedisStore  # only images that use Redis have the client

        return RedisStore(spec.async_store, spec.name, limits)
    return MemoryStore(limits)


class Predictions:
    def __init__(self, service: Service, admission: Admission, debug: bool = False) -> None:
        spec = service.spec
        self.service = service
        self.admission = admission
        self.debug = debug
        self.timeout_s = spec.async_timeout_s
        self.store = open_store(spec)
        self.secret_env = spec.webhook_secret_env
        self.webhooks = open_webhooks(os.environ.get(spec.webhook_secret_env, ""), spec.webhook_allowed_hosts)
        self.signs_webhooks = self.webhooks is not None
        self.running: dict[str, tuple[asyncio.Task[Any] | None, Job | None]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.started = self.closing = False

    # -- the routes ------------------------------------------------------------------
    async def wanted(self, prefer: bytes | None, body: Body) -> bool:
        """Async only by asking for it: `Prefer: respond-async`, or a webhook named at the
        body's top level (a word "webhook" inside the data is no such thing)."""
        if prefer is not None and b"respond-async" in prefer:
            return True
        return may_name_webhook(body) and await asyncio.to_thread(names_webhook, body)

    def running_count(self) -> int:
        return len(self.running)

    async def accept(self, body: Body, run_id: str, request_id: str) -> tuple[bytes, str]:
        """202's body and the prediction's id; 429 when the async queue is full."""
        id_ = uuid.uuid4().hex
        try:
            url, events = await asyncio.to_thread(webhook_options, body)
            if url is not None:
                if self.webhooks is None:
                    raise BadRequest(f"this server sends no webhooks: {self.secret_env} (server.webhook_secret_env) "
                                     "is not set (or not a whsec_ secret)", "bad_webhook")
                await self.webhooks.targets.check(url)
            meta = {"id": id_, "run_id": run_id, "request_id": request_id, "created_at": now_iso(), "webhook": url,
                    "events": events}
            record = Record(id_, STARTING, meta)
            if not await self.store.submit(record, body):
                raise Overloaded("the queue of async predictions is full (server.async_max_queue); retry later")
        except BaseException:
            for upload in body.files:  # not queued: nothing else will close them
                upload.close()
            raise
        self.start()
        return dumps({"id": id_, "status": STARTING, "run_id": run_id, "urls": urls(id_)}), id_

    async def get(self, id_: str) -> bytes | None:
        record = await self.store.get(id_)
        return None if record is None else document(record)

    async def cancel(self, id_: str) -> bytes | None:
        record = await self.store.get(id_)
        if record is None:
            return None
        if record.status not in TERMINAL:
            after = await self.store.cancel(id_, now_iso())
            if after is None:
                return None
            if after.status == CANCELED:
                self.stop(id_)
                log_prediction(record.meta["run_id"], [], 499, 0.0, {"async": id_, "canceled": True},
                               record.meta.get("request_id"))
                self.notify(after, "completed")
            record = after
        return document(record)

    # -- running the work --------------------------------------------------------------
    def start(self) -> None:
        """The dispatcher and the heartbeat, once per process, on the running event loop."""
        if not self.started and not self.closing:
            self.started = True
            for loop in (self.dispatch, self.heartbeat):
                task = asyncio.ensure_future(loop())
                self.tasks.add(task)

    async def dispatch(self) -> None:
        slots = self.admission.slots
        while not self.service.draining:
            if not self.service.ready or slots.locked():
                await asyncio.sleep(0.05)
                continue
            try:
                item = await self.store.take()
            except Exception as exc:  # the store is unreachable: try again, say so once a second
                log({"event": "async_store_error", **exception_record(exc)})
                await asyncio.sleep(1.0)
                continue
            if item is None:
                continue
            record, body = item
            self.running[record.id] = (None, None)  # held (its lease renewed) from the take on
            await slots.acquire()
            task = asyncio.ensure_future(self.run(record, body))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                ended = await self.store.heartbeat(list(self.running))
            except Exception as exc:
                log({"event": "async_store_error", **exception_record(exc)})
                continue
            for id_ in ended:
                self.stop(id_)

    def stop(self, id_: str) -> None:
        """Stop a prediction this process runs: the model may see conduit_runtime.cancelled()."""
        running = self.running.get(id_)
        task, job = running if running is not None else (None, None)
        if job is not None:
            job.cancel.set()
        if task is not None:
            task.cancel()

    async def run(self, record: Record, body: Body) -> None:
        id_, run_id = record.id, record.meta["run_id"]
        arrived = time.perf_counter()
        job = Job(self.service.flow, body, run_id, arrived,  # type: ignore[arg-type]
                  request_id=record.meta.get("request_id"))
        try:
            created = datetime.fromisoformat(record.meta["created_at"].replace("Z", "+00:00")).timestamp()
            left = self.timeout_s - (time.time() - created)
            if left <= 0:
                await self.end(record, job, TimedOut(self.timed_out()), arrived)
                return
            started = await self.store.start(id_, now_iso())
            if started == EXHAUSTED:
                await self.end(record, job, self.exhausted(), arrived)
            if started != STARTED:
                return
            record.status, record.started_at = PROCESSING, now_iso()
            self.notify(record, "start")
            task = asyncio.ensure_future(job.run(self.service.pool))
            self.running[id_] = (task, job)
            await asyncio.wait((task,), timeout=left)
            outcome: bytes | ServerError | None
            if not task.done():
                job.cancel.set()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                outcome = TimedOut(self.timed_out())
            elif task.cancelled():
                outcome = None  # canceled: the cancel said so already
            elif task.exception() is not None:
                outcome = internal_error(task.exception())  # type: ignore[arg-type]
            else:
                outcome = task.result()  # type: ignore[assignment]
            if outcome is not None and not self.closing:
                await self.end(record, job, outcome, arrived)
        finally:
            await self.settle(id_, job)

    def timed_out(self) -> str:
        return f"no answer within server.async_timeout_s = {self.timeout_s:g} s"

    def exhausted(self) -> ServerError:
        attempts = self.store.limits.max_attempts
        return ServerError(f"the model was started {attempts} times (server.async_max_attempts) and the process "
                           "running it died each time", "attempts_exhausted")

    async def end(self, record: Record, job: Job, outcome: bytes | ServerError, arrived: float) -> None:
        run_id = record.meta["run_id"]
        if isinstance(outcome, ServerError):
            status, answer = FAILED, error_body(outcome, run_id, self.debug)
        else:
            status, answer = SUCCEEDED, bytes(outcome)
        if not await self.store.finish(record.id, status, answer, now_iso()):
            return  # canceled meanwhile
        record.status, record.answer, record.completed_at = status, answer, now_iso()
        if isinstance(outcome, ServerError):
            failure = {"async": record.id, **(failure_of(outcome) or {"error": outcome.code, "detail": outcome.detail})}
            log_prediction(run_id, [], outcome.status, round((time.perf_counter() - arrived) * 1000, 3), failure,
                           record.meta.get("request_id"))
        else:
            write_line(job.log_line)
            # `output`: the result as it was made, before the prediction was marked done
            self.notify(replace(record, status=PROCESSING, completed_at=""), "output")
        self.notify(record, "completed")

    async def settle(self, id_: str, job: Job) -> None:
        """The slot is given back once the worker thread is done with the call (a thread
        cannot be stopped: a canceled call still holds its slot until it returns)."""
        working = job.working
        if working is not None and not working.done() and not self.closing:
            self.admission.overdue_job(1)  # its call runs on past its deadline: toward a wedge (/ready, /live)
            try:
                with contextlib.suppress(BaseException):
                    await asyncio.wrap_future(working)
            finally:
                self.admission.overdue_job(-1)
        job.close()
        self.running.pop(id_, None)
        self.admission.slots.release()

    def notify(self, record: Record, event: str) -> None:
        url = record.meta.get("webhook")
        if url and event in record.meta.get("events", ()) and self.webhooks is not None:
            self.webhooks.send(record.id, url, event, document(record), record.meta.get("request_id"))

    async def close(self) -> None:
        """Shutdown: work this process runs goes back to a shared queue (another replica
        runs it); with the memory store it is lost with the process."""
        self.closing = True
        held = [id_ for id_ in self.running]
        with contextlib.suppress(Exception):
            await self.store.release(held)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.webhooks is not None:
            await self.webhooks.close()
        with contextlib.suppress(Exception):
            await self.store.close()


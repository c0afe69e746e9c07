"""Where async predictions live between `POST /predict` (202) and the last `GET`:
their state, their answers and the work still to run.

    Store                the interface predictions.py drives
      ├── MemoryStore    one process (the default: `server.async_store: memory`)
      └── RedisStore     every replica and worker sharing one Redis (redis_store.py)

A prediction is a Record: its status, what was known when it was accepted (`meta`:
id, run_id, created_at, webhook), when it started and ended, and its `answer` (the
bytes of the envelope, or of the error body, exactly as a synchronous request gets
them). Work waits in a queue bounded by `server.async_max_queue`; results are kept
`server.async_ttl_s` and at most `server.async_max_results` of them, oldest first out.

A prediction is started at most `server.async_max_attempts` times: the Redis store counts
the starts, and one that ran out of them (each of its holders died) ends `failed`,
`attempts_exhausted`. The memory store counts none: its work dies with its one process.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..http.body import Body
from .spooled import Spooled

STARTING, PROCESSING = "starting", "processing"
SUCCEEDED, FAILED, CANCELED = "succeeded", "failed", "canceled"
TERMINAL = frozenset((SUCCEEDED, FAILED, CANCELED))
HEARTBEAT_S = 1.0  # how often a process renews what it runs (and, with Redis, reaps what others dropped)
STARTED, REFUSED, EXHAUSTED = "started", "refused", "exhausted"  # what start() says


@dataclass
class Record:
    id: str
    status: str
    meta: dict[str, Any]  # id, run_id, created_at (ISO), created (epoch s), webhook, events
    started_at: str = ""
    completed_at: str = ""
    answer: bytes = b""
    work: Spooled | None = field(default=None, repr=False)  # the body, while it waits (memory store)


@dataclass
class Limits:
    max_queue: int
    ttl_s: float
    max_results: int
    timeout_s: float
    max_attempts: int


class Store:
    """What predictions.py needs from a store; every method may wait on I/O."""

    limits: Limits

    async def submit(self, record: Record, body: Body) -> bool:
        """Keep the record and queue its work; False when the queue is full."""
        raise NotImplementedError

    async def get(self, id_: str) -> Record | None:
        raise NotImplementedError

    async def take(self) -> tuple[Record, Body] | None:
        """The next work to run, now held by this process (None: none came in a while); held
        from here on: heartbeat() renews it, while it waits for a slot too."""
        raise NotImplementedError

    async def start(self, id_: str, started_at: str) -> str:
        """Starting → processing: STARTED; REFUSED when it was canceled (or evicted) meanwhile,
        or this process no longer holds it; EXHAUSTED when it was started max_attempts times."""
        raise NotImplementedError

    async def finish(self, id_: str, status: str, answer: bytes, completed_at: str) -> bool:
        """Its outcome from its holder, unless it already has one (canceled meanwhile) or this
        process no longer holds it; the work is let go either way."""
        raise NotImplementedError

    async def cancel(self, id_: str, completed_at: str) -> Record | None:
        """Canceled, unless it already ended; the record after (None: unknown id)."""
        raise NotImplementedError

    async def heartbeat(self, ids: list[str]) -> set[str]:
        """This process still holds `ids`; those that ended elsewhere (canceled), or that it no
        longer holds, are returned: they must not start, or go on."""
        return set()

    async def release(self, ids: list[str]) -> None:
        """Shutdown: work this process runs goes back to the queue for another one (if it can)."""

    async def close(self) -> None:
        pass


class MemoryStore(Store):
    """One process: the records in a dict, the queue in an ordered dict of records whose
    bodies wait on disk (spooled.py) until their prediction runs."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.records: dict[str, Record] = {}
        self.waiting: OrderedDict[str, Record] = OrderedDict()
        self.ended: OrderedDict[str, float] = OrderedDict()  # id → when it ended (monotonic)
        self.arrived = asyncio.Event()

    async def submit(self, record: Record, body: Body) -> bool:
        if len(self.waiting) >= self.limits.max_queue:
            return False
        self.evict()
        record.work = await asyncio.to_thread(Spooled.write, body)
        if len(self.waiting) >= self.limits.max_queue:  # filled while it was written
            record.work.close()
            return False
        self.records[record.id] = record
        self.waiting[record.id] = record
        self.arrived.set()
        return True

    async def get(self, id_: str) -> Record | None:
        self.evict()
        return self.records.get(id_)

    async def take(self) -> tuple[Record, Body] | None:
        if not self.waiting:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), 0.5)
            except TimeoutError:
                return None
            if not self.waiting:
                return None
        _, record = self.waiting.popitem(last=False)
        work, record.work = record.work, None
        assert work is not None
        return record, await asyncio.to_thread(work.read)

    async def start(self, id_: str, started_at: str) -> str:
        record = self.records.get(id_)
        if record is None or record.status in TERMINAL:
            return REFUSED
        record.status, record.started_at = PROCESSING, started_at
        return STARTED

    async def finish(self, id_: str, status: str, answer: bytes, completed_at: str) -> bool:
        record = self.records.get(id_)
        if record is None or record.status in TERMINAL:
            return False
        self.end(record, status, answer, completed_at)
        return True

    async def cancel(self, id_: str, completed_at: str) -> Record | None:
        record = self.records.get(id_)
        if record is None or record.status in TERMINAL:
            return record
        queued = self.waiting.pop(id_, None)
        if queued is not None and queued.work is not None:  # never to run: its files go now
            queued.work.close()
            queued.work = None
        self.end(record, CANCELED, b"", completed_at)
        return record

    def end(self, record: Record, status: str, answer: bytes, completed_at: str) -> None:
        record.status, record.answer, record.completed_at = status, answer, completed_at
        self.ended[record.id] = time.monotonic()
        self.evict()

    def evict(self) -> None:
        """Results past their ttl, then the oldest past the count, go."""
        expired = time.monotonic() - self.limits.ttl_s
        while self.ended:
            id_, when = next(iter(self.ended.items()))
            if when > expired and len(self.ended) <= self.limits.max_results:
                break
            del self.ended[id_]
            self.records.pop(id_, None)

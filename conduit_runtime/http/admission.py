"""Admit: a place for the prediction before a byte of its body is read.

`max_concurrency` predictions run at once and `max_queue` more wait (reading
their body, or for a slot); past that a request gets 429 at once. The bodies
they hold in memory share one budget in bytes, `max_buffered_mb`: each is
counted by its Content-Length before it is read, or as it arrives when it has
none (body.py), and freed when its request ends (or its call does, past a
504); one that does not fit gets 429 too. So memory holds at most
max_buffered_mb of request bodies, whatever the number and size of requests.

A call still running when its request timed out keeps its slot until it ends
(its thread cannot be stopped), and so does an async prediction's past
server.async_timeout_s: when every model thread (server.max_concurrency) is held
that way the server is wedged (or when a batched stage's call is: model/batch.py),
and /ready says so, so that traffic goes elsewhere; /live once it lasted
server.wedge_restart_s (http/readiness.py).
"""

from __future__ import annotations

import asyncio
import time

from ..errors import Overloaded, PayloadTooLarge
from ..log import log


class Admission:
    def __init__(self, max_running: int, max_queue: int, max_buffered: int, threads: int | None = None) -> None:
        self.threads = threads or max_running  # the model's worker threads
        self.capacity = max_running + max_queue
        self.max_buffered = max_buffered  # bytes of request bodies held in memory, all requests together
        self.buffered = 0
        self.slots = asyncio.Semaphore(max_running)
        self.waiting = 0  # admitted, reading their body or waiting for a slot
        self.running = 0  # slots held
        self.overdue = 0  # slots held by calls whose request already got its 504
        self.overdue_async = 0  # async predictions' calls running past server.async_timeout_s
        self.wedged_since: float | None = None  # monotonic time a probe first found the server wedged

    def admit(self) -> Place:
        if self.waiting + self.running >= self.capacity:
            raise Overloaded(f"{self.running} predictions are running and {self.waiting} are waiting; retry later")
        self.waiting += 1
        return Place(self)

    @property
    def busy(self) -> int:
        """Requests that still expect an answer: shutdown waits for them."""
        return self.waiting + self.running - self.overdue

    @property
    def threads_wedged(self) -> bool:
        """Every model thread runs a call past its request's deadline."""
        return self.overdue + self.overdue_async >= self.threads

    def note_wedge(self, wedged: bool) -> None:
        """What a probe found: the wedge's start is kept (for /live) and its changes logged."""
        if wedged == (self.wedged_since is not None):
            return
        self.wedged_since = time.monotonic() if wedged else None
        log({"event": "wedged" if wedged else "unwedged", "overdue": self.overdue + self.overdue_async, "message": (
            "every model thread (or a batched stage's call) runs past its requests' deadline; "
            "/ready answers 503 until one ends, /live after server.wedge_restart_s"
            if wedged else "a model call ended; /ready answers 200"
        )})

    def overdue_job(self, change: int) -> None:
        """An async prediction's call runs on past its deadline (1), or ended (-1)."""
        self.overdue_async += change


class Place:
    """One admitted request: waiting, then running, then gone."""

    __slots__ = ("admission", "held", "running")

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.running = False
        self.held = 0  # bytes of its body counted against max_buffered

    def hold(self, size: int) -> None:
        """`size` more bytes of its body in memory, or 429 when the budget has no room for them."""
        admission = self.admission
        if self.held + size > admission.max_buffered:  # would not fit even alone: retrying cannot help
            raise PayloadTooLarge(f"request body is over the {admission.max_buffered} bytes that all bodies held "
                                  "in memory share (server.max_buffered_mb)")
        if admission.buffered + size > admission.max_buffered:
            raise Overloaded(f"the server's buffer budget is full: {admission.buffered} bytes of request bodies "
                             "are held in memory (server.max_buffered_mb); retry later")
        admission.buffered += size
        self.held += size

    async def run(self) -> None:
        """Wait for a slot (cancelled by the request's timeout: then still waiting)."""
        await self.admission.slots.acquire()
        self.admission.waiting -= 1
        self.admission.running += 1
        self.running = True

    def leave(self) -> None:
        admission = self.admission
        admission.buffered -= self.held
        if self.running:
            admission.running -= 1
            admission.slots.release()
        else:
            admission.waiting -= 1

    def overdue(self) -> None:
        """The request was answered (504) while its call goes on."""
        self.admission.overdue += 1

    def leave_overdue(self) -> None:
        self.admission.overdue -= 1
        self.leave()

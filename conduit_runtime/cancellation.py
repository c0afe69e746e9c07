"""`cancelled()`: whether the prediction this code runs for should stop early.

It turns true once the prediction's client disconnected (a synchronous request
or an event stream), its request ran past server.timeout_s, or it was cancelled
(`POST /predictions/{id}/cancel`). A long-running model looks at it between steps:

    from conduit_runtime import cancelled

    def predict(self, data):
        for step in range(10_000):
            if cancelled():
                break
            ...

Each prediction (a Job) owns a `threading.Event`, `job.cancel`; the server sets
it, and `current` carries it to the user code that runs for that job: in a
worker thread (a ThreadPoolExecutor does not copy contextvars, so the worker
sets and resets it around each call, see `within`) or as a coroutine on the
event loop (the request's task carries it). Outside a prediction (the Python
API, the warm-up) it is always false.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

current: ContextVar[threading.Event | None] = ContextVar("conduit_cancel", default=None)

T = TypeVar("T")


def cancelled() -> bool:
    """True once the running prediction should stop: its client left, it timed out, or it was cancelled."""
    event = current.get()
    return event is not None and event.is_set()


def cancel_event() -> threading.Event | None:
    """The running prediction's own flag, for code that hands the work to a thread of
    its own (where the contextvar does not follow), e.g. a generation thread."""
    return current.get()


def within(cancel: threading.Event, fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) with `cancel` as the prediction's flag, for a worker thread."""
    token = current.set(cancel)
    try:
        return fn(*args)
    finally:
        current.reset(token)


__all__ = ["cancel_event", "cancelled", "current", "within"]

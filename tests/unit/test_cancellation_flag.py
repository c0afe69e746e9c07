"""conduit_runtime.cancelled() outside and inside `within` (what a worker thread runs)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from conduit_runtime import cancelled
from conduit_runtime.cancellation import cancel_event, within


def test_outside_a_prediction_nothing_is_cancelled() -> None:
    assert cancelled() is False and cancel_event() is None


def test_a_worker_thread_sees_its_own_predictions_flag_only_while_it_runs_for_it() -> None:
    """A ThreadPoolExecutor copies no contextvars: `within` sets the flag for the call and resets it."""
    flag, other = threading.Event(), threading.Event()
    flag.set()
    with ThreadPoolExecutor(1) as pool:  # one thread, so the second call reuses it
        assert pool.submit(within, flag, cancelled).result() is True
        assert pool.submit(within, other, cancelled).result() is False
        assert pool.submit(cancelled).result() is False  # nothing left behind in the thread
        assert pool.submit(within, other, cancel_event).result() is other

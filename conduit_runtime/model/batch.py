"""Batch: the model call of one stage shared by the requests waiting for it.

    request A  x: 2 rows ─┐                               ┌─> rows 0-1  → A's post hook
    request B  x: 1 row  ─┼─> concatenate ─> one call ─> split ──> row 2  → B's post hook
    request C  x: 3 rows ─┘     (first axis)              └─> rows 3-5 → C's post hook

A Batcher stands in for a stage's model call (`models[i].batch` in conduit.yaml).
The algorithm is adaptive: while the stage's call runs, requests wait; when it
ends, everything waiting (up to `max_size` rows, in arrival order, with the same
parameters) goes as one call. With `max_wait_ms > 0` a batch that is not full
also waits that long for more rows. A request that finds the stage idle goes at
once, alone, with its input as it is: at low load nothing waits.

Each request keeps its own rows, order, timeout (one that times out while waiting
leaves the queue) and error: when a batch call fails, each half of the batch goes
again (bisection: one bad input among n costs about 2·log2(n) more calls, and
the others still answer), and `conduit_batch_failures_total` counts the failed
call. An input that cannot be batched (a dict, a scalar, more rows than
`max_size`, a type that does not concatenate with the others) runs alone, in
turn. A model whose output is not one row per input row cannot be split back:
the stage logs `batch_disabled` once and is called per request from then on.

Calls run in the batcher's own thread (one batch at a time per stage), under the
stage's lock; an `async def` model is awaited on the event loop. A call whose
every request has ended (answered 504, or gone) is `overdue`: a stage whose call
hangs is wedged, and /ready says so (http/readiness.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

from ..cancellation import cancel_event
from ..log import log
from .calls import Call, rewind

# The rows of the largest model call this request's rows went through, for its log
# line. Set on the request's own task (so each request sees only its own), read by
# the endpoint when it records the answer.
BATCH_SIZE: ContextVar[int | None] = ContextVar("conduit_batch_size", default=None)

Outcome = tuple[bool, Any]  # (True, this request's output) or (False, its exception)
# The model calls that answer a batch: yields (x, files, parameters), is sent each call's Outcome.
Steps = Generator[tuple[Any, list[Any], dict[str, Any]], Outcome, list[Outcome]]


class Item:
    """One request's input, waiting for its turn."""

    __slots__ = ("batch_rows", "files", "future", "parameters", "rows", "taken", "x")

    def __init__(self, x: Any, rows: int | None, files: list[Any], parameters: dict[str, Any],
                 future: asyncio.Future[Any]) -> None:
        self.x = x
        self.rows = rows  # None: cannot be batched, runs alone
        self.files = files
        self.parameters = parameters
        self.future = future
        self.taken = False
        self.batch_rows = 0


class Batcher:
    """The batched model call of one stage; a plan yields it like a Call."""

    is_async = True  # a plan hands it to the event loop, which gathers the batch
    batched = True  # Flow.run (the Python API, the warm-up) calls it alone, in its thread

    def __init__(self, call: Call, max_size: int, max_wait_ms: float,
                 observe: Callable[[int, bool], None] | None = None, stage: str = "") -> None:
        self.call = call  # the stage's model call: its lock and its reading of errors
        self.where = call.where
        self.stage = stage
        self.max_size = max_size
        self.max_wait = max_wait_ms / 1000
        self.observe = observe  # (rows, failed): each call's rows (the histogram), or a failed batch call
        self.disabled = False  # the output does not split back: the stage is called per request
        # Whether each request of the call running now has ended; all of them: overdue.
        self.current: list[Callable[[], bool]] = []
        self.waiting: deque[Item] = deque()
        self.rows_waiting = 0
        self.busy = False  # a call of this stage runs (or a drain is under way)
        # Guards `busy` and appends to `waiting`: a worker thread may take an idle stage (try_now).
        self.mutex = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.full: asyncio.Event | None = None  # set when max_wait_ms is being waited and the batch fills
        self.task: asyncio.Task[None] | None = None
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="conduit-batch")

    def try_now(self, x: Any, files: list[Any], parameters: dict[str, Any]) -> tuple[bool, Any]:
        """From the request's worker thread: when the stage is idle, call the model right
        here (True, output), with no hop to the event loop and back; else (False, None) and
        the request joins the queue. This is the path at low load: nothing waits, and a
        request costs what it costs unbatched."""
        with self.mutex:
            if self.busy or self.call.is_async:
                return False, None
            self.busy = True
        cancel = cancel_event()
        self.current = [cancel.is_set] if cancel is not None else []
        try:
            rows = rows_of(x)
            self.observed(rows or 1)
            out = self.call(x, files, parameters)
            self.check_rows(rows, out)
            return True, out
        finally:
            self.current = []
            with self.mutex:
                if self.waiting and self.loop is not None:  # they came while this call ran
                    self.loop.call_soon_threadsafe(self.start_drain)
                else:
                    self.busy = False

    def start_drain(self) -> None:
        assert self.loop is not None
        self.task = self.loop.create_task(self.drain())

    async def call_async(self, x: Any, files: list[Any], parameters: dict[str, Any]) -> Any:
        loop = self.loop = asyncio.get_running_loop()
        rows = rows_of(x)
        if rows is not None and not 0 < rows <= self.max_size:
            rows = None
        item = Item(x, rows, files, parameters, loop.create_future())
        with self.mutex:
            self.waiting.append(item)
            idle = not self.busy
            self.busy = True
        self.rows_waiting += rows or 0
        if idle:
            self.start_drain()
        elif self.full is not None and self.rows_waiting >= self.max_size:
            self.full.set()
        try:
            return await item.future
        except asyncio.CancelledError:  # the request timed out (or its client left)
            if not item.taken:
                self.waiting.remove(item)
                self.rows_waiting -= item.rows or 0
            raise
        finally:
            size = BATCH_SIZE.get()
            if item.future.done() and not item.future.cancelled() and (size is None or item.batch_rows > size):
                BATCH_SIZE.set(item.batch_rows)

    async def drain(self) -> None:
        try:
            while True:
                with self.mutex:
                    if not self.waiting:
                        self.busy = False
                        return
                if self.max_wait > 0 and self.rows_waiting < self.max_size:
                    await self.wait_for_more()
                    if not self.waiting:  # every one waiting timed out meanwhile
                        continue
                await self.execute(self.take())
        except BaseException:
            with self.mutex:
                self.busy = False
            raise

    async def wait_for_more(self) -> None:
        self.full = asyncio.Event()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.max_wait):
                    await self.full.wait()
        finally:
            self.full = None

    def take(self) -> list[Item]:
        """The first waiting request and those behind it that fit in one call with it."""
        first = self.waiting.popleft()
        batch = [first]
        rows = first.rows or 0
        if first.rows is not None:
            while self.waiting:
                after = self.waiting[0]
                if after.rows is None or rows + after.rows > self.max_size or after.parameters != first.parameters:
                    break
                batch.append(self.waiting.popleft())
                rows += after.rows
        self.rows_waiting -= rows
        for item in batch:
            item.taken = True
            item.batch_rows = rows
        return batch

    async def execute(self, batch: list[Item]) -> None:
        self.current = [item.future.cancelled for item in batch]  # cancelled: its request timed out or left
        try:
            if self.call.is_async:
                outcomes = await self.run_async(batch)
            else:
                outcomes = await asyncio.get_running_loop().run_in_executor(self.thread, self.run, batch)
        except BaseException as exc:  # a bug of ours: every member still gets an answer
            outcomes = [(False, exc)] * len(batch)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.current = []
        for item, (ok, value) in zip(batch, outcomes, strict=True):
            if item.future.done():  # its request timed out while the call ran
                continue
            if ok:
                item.future.set_result(value)
            else:
                item.future.set_exception(value)

    # -- the calls of one batch ---------------------------------------------------------
    def steps(self, batch: list[Item]) -> Steps:
        """One call for the whole batch when the inputs stack and the output splits back;
        when that call fails, each half again, down to the culprit alone."""
        if len(batch) == 1 or self.disabled:
            return (yield from self.each_alone(batch))
        try:
            x = concatenate([item.x for item in batch])
        except Exception:  # inputs that do not stack (other widths, other types): each alone
            return (yield from self.each_alone(batch))
        rows = sum(item.rows or 0 for item in batch)
        for item in batch:
            item.batch_rows = rows
        files = [upload for item in batch for upload in item.files]
        rewind(files)
        self.observed(rows)
        ok, out = yield x, files, batch[0].parameters
        if not ok:
            self.observed(rows, failed=True)
            half = len(batch) // 2
            return (yield from self.steps(batch[:half])) + (yield from self.steps(batch[half:]))
        try:
            return [(True, part) for part in split(out, batch)]
        except Exception as exc:
            self.disable(str(exc))
            return (yield from self.steps(batch))  # each alone, now

    def each_alone(self, batch: list[Item]) -> Steps:
        outcomes = []
        for item in batch:
            outcomes.append((yield from self.alone(item)))
        return outcomes

    def alone(self, item: Item) -> Generator[tuple[Any, list[Any], dict[str, Any]], Outcome, Outcome]:
        item.batch_rows = rows_of(item.x) or 1
        self.observed(item.batch_rows)
        rewind(item.files)
        ok, out = yield item.x, item.files, item.parameters
        if ok:
            self.check_rows(item.rows, out)
        return ok, out

    def check_rows(self, rows: int | None, out: Any) -> None:
        """A call of `rows` rows that did not answer as many rows: its stage cannot be batched."""
        if rows is not None and not self.disabled and rows_of(out) != rows:
            self.disable(f"the model returned {rows_of(out)} rows for {rows}")

    def disable(self, reason: str) -> None:
        if not self.disabled:
            self.disabled = True
            log({"event": "batch_disabled", "stage": self.stage, "reason": reason, "message":
                 "the model's output is not one row per input row, so a batch cannot be split back; "
                 "this stage is called per request from now on"})

    def run(self, batch: list[Item]) -> list[Outcome]:
        """In the batcher's thread."""
        steps = self.steps(batch)
        outcome: Any = None
        try:
            while True:
                x, files, parameters = steps.send(outcome)
                try:
                    outcome = (True, self.call(x, files, parameters))
                except Exception as exc:
                    outcome = (False, exc)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def run_async(self, batch: list[Item]) -> list[Outcome]:
        """An `async def` model, on the event loop."""
        steps = self.steps(batch)
        outcome: Any = None
        try:
            while True:
                x, files, parameters = steps.send(outcome)
                try:
                    outcome = (True, await self.call.call_async(x, files, parameters))
                except Exception as exc:
                    outcome = (False, exc)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    @property
    def overdue(self) -> bool:
        """A call of this stage runs on past the end of every request it answers."""
        current = self.current
        return bool(current) and all(ended() for ended in current)

    def observed(self, rows: int, failed: bool = False) -> None:
        if self.observe is not None:
            self.observe(rows, failed)

    def close(self) -> None:
        self.thread.shutdown(wait=False, cancel_futures=True)


def rows_of(x: Any) -> int | None:
    """Rows along the first axis: a list's length, an array's, tensor's, frame's or
    sparse matrix's shape[0]; None for what has no first axis (a dict, a scalar)."""
    if isinstance(x, list):
        return len(x)
    shape = getattr(x, "shape", None)
    if isinstance(shape, tuple) and shape and isinstance(shape[0], int):
        return shape[0]
    if shape is not None and hasattr(shape, "__len__") and len(shape) and isinstance(shape[0], int):  # torch.Size
        return int(shape[0])
    return None


def library(value: Any) -> str:
    return type(value).__module__.partition(".")[0]


def concatenate(xs: list[Any]) -> Any:
    """The inputs as one, along the first axis; TypeError where they do not go together."""
    first = xs[0]
    if any(type(x) is not type(first) for x in xs):
        raise TypeError("inputs of different types")
    if isinstance(first, list):
        return [row for x in xs for row in x]
    kind = library(first)
    if kind == "numpy":
        import numpy

        return numpy.concatenate(xs, axis=0)
    if kind == "scipy":
        import scipy.sparse

        return scipy.sparse.vstack(xs, format=first.format)
    if kind == "pandas":
        import pandas

        return pandas.concat(xs, ignore_index=True)
    if kind == "torch":
        import torch

        return torch.cat(xs, dim=0)
    raise TypeError(f"{type(first).__name__} inputs are not concatenated")


def split(out: Any, batch: list[Item]) -> list[Any]:
    """The batch's output cut back into each member's rows, in order."""
    total = sum(item.rows or 0 for item in batch)
    if rows_of(out) != total:
        raise ValueError(f"the model returned {rows_of(out)} rows for {total}")
    kind = library(out)
    if kind == "pandas":
        rows = out.iloc
    elif kind == "scipy":
        rows = out.tocsr()  # a COO matrix has no row slicing (a CSR one is returned as it is)
    else:
        rows = out
    parts = []
    start = 0
    for item in batch:
        end = start + (item.rows or 0)
        parts.append(rows[start:end])
        start = end
    return parts


__all__ = ["BATCH_SIZE", "Batcher", "concatenate", "rows_of", "split"]

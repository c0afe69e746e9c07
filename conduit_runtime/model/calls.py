"""A call of user code (a hook or a model) and how its exceptions are read.

Hooks are looked up and their arity read once, at load; a request then only
calls functions. `pre(data)` / `pre(data, files)`; `post(out)`,
`post(out, data)` / `post(out, data, files)`.

One concurrency rule, applied here where calls happen: a stage has one lock,
and a call that is not thread-safe holds it while it runs, so such calls of one
stage run one at a time. The model takes it unless it is thread-safe (its
loader says, or a python model's `thread_safe = True`); each hook takes it
unless the hook function has `thread_safe = True`. A stream (a generator) made
under the lock keeps it until the stream ends, fails or is closed (`Held`): its
chunks are the model running. Only synchronous calls lock, in worker threads
(never on the event loop); an `async def` call runs on the event loop, one
piece at a time anyway.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ServerError, from_user_code
from .userland import positional_arity


@dataclass(frozen=True)
class Call:
    """One call of user code, with what it takes to read its exceptions."""

    fn: Callable[..., Any]
    where: str  # "models[0] (sklearn) pre hook", for messages and logs
    is_async: bool = False
    lock: threading.Lock | None = None  # the stage's lock, for a call that is not thread-safe
    rejects: Callable[[BaseException], str | None] | None = None

    def __call__(self, *args: Any) -> Any:
        try:
            if self.lock is None:
                return self.fn(*args)
            return locked(self.lock, self.fn, args)
        except USER_ERRORS as exc:
            raise from_user_code(exc, self.where, self.rejects) from exc

    async def call_async(self, *args: Any) -> Any:
        try:
            return await self.fn(*args)
        except USER_ERRORS as exc:
            raise from_user_code(exc, self.where, self.rejects) from exc


# What user code may raise. A model calling sys.exit() fails its request only: ending
# the server is not its to do. (Not BaseException: the request's timeout cancels an
# async call with CancelledError, which must go through.)
USER_ERRORS = (Exception, SystemExit, KeyboardInterrupt)


class Stopped(ServerError):
    """Its request ended (answered 504, its client left, or it was cancelled) before this
    step began: no later step of it starts. Nobody reads the answer; the log line says 499."""

    status, code = 499, "stopped"


def is_stream(value: Any) -> bool:
    """A generator or other iterator a model returned (not a file, which is one too)."""
    return isinstance(value, Iterator) and not isinstance(value, io.IOBase)


def locked(lock: threading.Lock, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """fn(*args) under the stage's lock. A stream it returns keeps the lock (Held). A stream
    of the same stage handed in (a post hook given its model's chunks) holds the lock
    already: the call runs under it, and the lock passes to what the call returns."""
    first = args[0] if args else None  # what a stream is handed in as: a hook's or model's input
    inner = first if isinstance(first, Held) and first.lock is lock and first.holds else None
    if inner is None:
        lock.acquire()
    try:
        out = fn(*args)
    except BaseException:
        free(lock, inner)
        raise
    if out is inner and inner is not None:
        return out
    if is_stream(out):
        return Held(out, lock, inner)
    free(lock, inner)
    return out


def free(lock: threading.Lock, inner: Held | None) -> None:
    if inner is not None:
        inner.close()
    else:
        lock.release()


class Held(Iterator[Any]):
    """A stream made under its stage's lock, which it holds until it ends, fails or is closed
    (a client that leaves closes it): no other call of the stage runs between its chunks.
    Releasing never blocks, so closing it is safe anywhere, the event loop included."""

    def __init__(self, stream: Iterator[Any], lock: threading.Lock, inner: Held | None = None) -> None:
        self.stream = stream
        self.lock = lock
        self.inner = inner  # the stream this one was made from, whose lock it took over
        self.holds = True
        if inner is not None:
            inner.holds = False

    def __next__(self) -> Any:
        try:
            return next(self.stream)
        except BaseException:  # the end (StopIteration) or a failure: the stage is free again
            self.close()
            raise

    def close(self) -> None:
        try:
            close = getattr(self.stream, "close", None)
            if close is not None:
                close()
            if self.inner is not None:
                self.inner.close()
        finally:
            if self.holds:
                self.holds = False
                self.lock.release()

    def __del__(self) -> None:  # dropped unread (its request ended first): the stage must not stay locked
        with contextlib.suppress(Exception):
            self.close()


def close_streams(args: tuple[Any, ...]) -> None:
    """Close the locked streams among a step's arguments, for a step that will not run."""
    for arg in args:
        if isinstance(arg, Held):
            arg.close()


# What a plan yields: the next call (a Call, or the Batcher that stands in for a batched
# stage's model: batch.py) and its arguments; it is sent the result.
Plan = Generator[tuple[Any, tuple[Any, ...]], Any, Any]


def hook_lock(fn: Callable[..., Any], lock: threading.Lock | None) -> threading.Lock | None:
    """The stage's lock for a hook, unless the function says `thread_safe = True` (or is
    `async def`, which runs on the event loop)."""
    if getattr(fn, "thread_safe", False) or inspect.iscoroutinefunction(fn):
        return None
    return lock


def bind_pre(fn: Callable[..., Any], where: str, lock: threading.Lock | None = None) -> Call:
    """pre(data) or pre(data, files), called as (data, files)."""
    if positional_arity(fn) >= 2:
        bound = fn
    else:
        def bound(data: Any, files: list[Any]) -> Any:
            return fn(data)
    return Call(bound, where, is_async=inspect.iscoroutinefunction(fn), lock=hook_lock(fn, lock))


def bind_post(fn: Callable[..., Any], where: str, lock: threading.Lock | None = None) -> Call:
    """post(out), post(out, data) or post(out, data, files), called as (out, data, files)."""
    arity = positional_arity(fn)
    if arity >= 3:
        bound = fn
    elif arity == 2:
        def bound(out: Any, data: Any, files: list[Any]) -> Any:
            return fn(out, data)
    else:
        def bound(out: Any, data: Any, files: list[Any]) -> Any:
            return fn(out)
    return Call(bound, where, is_async=inspect.iscoroutinefunction(fn), lock=hook_lock(fn, lock))


def rewind(files: list[Any]) -> None:
    """Every hook and the model see each file from its start (DESIGN §2: at position 0)."""
    for upload in files:
        if not upload.closed:  # a hook may have closed one; reading it then is its own error
            upload.seek(0)

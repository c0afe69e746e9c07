"""A call of user code (a hook or a model) and how its exceptions are read.

Hooks are looked up and their arity read once, at load; a request then only
calls functions. `pre(data)` / `pre(data, files)`; `post(out)`,
`post(out, data)` / `post(out, data, files)`. A model that may not be called
from several threads at once is called under its stage's lock.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from ..errors import from_user_code
from .userland import positional_arity


@dataclass(frozen=True)
class Call:
    """One call of user code, with what it takes to read its exceptions."""

    fn: Callable[..., Any]
    where: str  # "models[0] (sklearn) pre hook", for messages and logs
    is_async: bool = False
    lock: threading.Lock | None = None  # held while a model that is not thread-safe runs
    rejects: Callable[[BaseException], str | None] | None = None

    def __call__(self, *args: Any) -> Any:
        try:
            if self.lock is None:
                return self.fn(*args)
            with self.lock:
                return self.fn(*args)
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


# What a plan yields: the next call (a Call, or the Batcher that stands in for a batched
# stage's model: batch.py) and its arguments; it is sent the result.
Plan = Generator[tuple[Any, tuple[Any, ...]], Any, Any]


def bind_pre(fn: Callable[..., Any], where: str) -> Call:
    """pre(data) or pre(data, files), called as (data, files)."""
    if positional_arity(fn) >= 2:
        bound = fn
    else:
        def bound(data: Any, files: list[Any]) -> Any:
            return fn(data)
    return Call(bound, where, is_async=inspect.iscoroutinefunction(fn))


def bind_post(fn: Callable[..., Any], where: str) -> Call:
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
    return Call(bound, where, is_async=inspect.iscoroutinefunction(fn))


def rewind(files: list[Any]) -> None:
    """Every hook and the model see each file from its start (DESIGN §2: at position 0)."""
    for upload in files:
        if not upload.closed:  # a hook may have closed one; reading it then is its own error
            upload.seek(0)

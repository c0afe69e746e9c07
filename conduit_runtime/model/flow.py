"""A flow: stages run in order, each output feeding the next.

A prediction is a *plan*: a generator that yields each call of user code (a
hook or a model, calls.py) and receives its result. The same plan runs two ways:
`Flow.run` calls everything in the calling thread (the Python API, the warm-up,
a worker thread), and `drive` runs the synchronous calls until the next
`async def` one, which the server then awaits on its event loop without holding
a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ..cancellation import cancelled
from ..spec import ServerSpec, StageSpec
from .batch import Batcher
from .calls import Call, Plan, Stopped, bind_post, bind_pre, close_streams, is_stream, rewind
from .loaders import Model, load_model
from .userland import load_object


@dataclass(frozen=True)
class Stage:
    label: str
    model: Call  # (x, files, parameters)
    coerce: Call  # (data,): the type's own input coercion, used when there is no pre hook
    pre: Call | None = None
    post: Call | None = None
    features: int | None = None  # numbers per row the model takes, where its library says
    batch: Batcher | None = None  # models[i].batch: stands in for `model` on the server (batch.py)
    signature: dict[str, Any] | None = None  # the model's tensors, where its library says (loaders/signatures.py)

    @classmethod
    def build(cls, label: str, model: Model, pre: Callable[..., Any] | None = None,
              post: Callable[..., Any] | None = None) -> Stage:
        """A stage from a loaded model and the hook functions themselves; the calls that are
        not thread-safe share the stage's one lock (calls.py)."""
        lock = threading.Lock()
        return cls(
            label=label,
            model=Call(model.call, f"{label} model", model.is_async,
                       None if model.thread_safe or model.is_async else lock, model.rejects),
            coerce=Call(model.coerce, f"{label} input"),
            pre=bind_pre(pre, f"{label} pre hook", lock) if pre else None,
            post=bind_post(post, f"{label} post hook", lock) if post else None,
            features=model.features,
            signature=model.signature,
        )

    def plan(self, data: Any, files: list[Any], parameters: dict[str, Any]) -> Plan:
        rewind(files)
        x = (yield self.pre, (data, files)) if self.pre else (yield self.coerce, (data,))
        rewind(files)
        # A batched stage whose output does not split back per request is called per request (batch.py).
        batch = self.batch
        out = yield (self.model if batch is None or batch.disabled else batch), (x, files, parameters)
        if self.post is None:
            return out
        rewind(files)
        return (yield self.post, (out, data, files))


@dataclass
class Flow:
    stages: list[Stage]
    is_async: bool = field(init=False)  # some call must be awaited on an event loop
    batched: bool = field(init=False)  # some stage has models[i].batch

    def __post_init__(self) -> None:
        calls = [c for s in self.stages for c in (s.pre, s.model, s.coerce, s.post) if c is not None]
        self.is_async = any(call.is_async for call in calls)
        self.batched = any(stage.batch is not None for stage in self.stages)

    @property
    def features(self) -> int | None:
        """Numbers per row of the request's data, when the first model reads the data as it
        comes (no pre hook) and its library knows how many it takes."""
        first = self.stages[0] if self.stages else None
        return first.features if first is not None and first.pre is None else None

    @property
    def signature(self) -> dict[str, Any] | None:
        """The flow's tensors for the Open Inference Protocol: the first model's inputs when it
        reads the request as it comes, the last model's outputs when no post hook changes them."""
        if not self.stages:
            return None
        first, last = self.stages[0], self.stages[-1]
        inputs = first.signature["inputs"] if first.signature and first.pre is None else []
        outputs = last.signature["outputs"] if last.signature and last.post is None else []
        return {"inputs": inputs, "outputs": outputs} if inputs or outputs else None

    @classmethod
    def load(cls, spec: ServerSpec, observe_batch: Callable[[str, int, bool], None] | None = None) -> Flow:
        """The stages of the spec; `observe_batch(stage, rows, failed)` hears of each batched
        call (failed: a batch call that failed, bisected to find its culprit)."""
        return cls([load_stage(spec, index, stage, observe_batch) for index, stage in enumerate(spec.stages)])

    @property
    def batchers(self) -> list[Batcher]:
        return [stage.batch for stage in self.stages if stage.batch is not None]

    def plan(self, data: Any, files: list[Any], parameters: dict[str, Any], collect: bool = True) -> Plan:
        for stage in self.stages:
            data = yield from stage.plan(data, files, parameters)
        # A model or post hook that yields its result in chunks: collected for the envelope,
        # unless the caller streams them (Server-Sent Events).
        if not collect:
            return data
        if hasattr(data, "__aiter__"):
            return (yield COLLECT_ASYNC, (data,))
        if is_stream(data):
            return (yield COLLECT, (data,))
        return data

    def run(self, data: Any, files: list[Any], parameters: dict[str, Any]) -> Any:
        """The whole flow in the calling thread; `async def` calls run to completion here."""
        plan = self.plan(data, files, parameters)
        done, value = drive(plan)
        while not done:
            call, args = value
            if getattr(call, "batched", False):  # a batched model here is called alone: nothing to batch it with
                call = call.call
            done, value = drive(plan, run_coroutine(call.call_async(*args)) if call.is_async else call(*args))
        return value


def joined(chunks: list[Any]) -> Any:
    """The chunks as a list, or one string when they all are strings (generated text)."""
    return "".join(chunks) if chunks and all(isinstance(chunk, str) for chunk in chunks) else chunks


async def collect_async(stream: AsyncIterator[Any]) -> Any:
    return joined([chunk async for chunk in stream])


COLLECT = Call(lambda stream: joined(list(stream)), "the result's stream")
COLLECT_ASYNC = Call(collect_async, "the result's stream", is_async=True)


def drive(plan: Plan, value: Any = None) -> tuple[bool, Any]:
    """Run the plan's synchronous calls, from sending it `value`, until it ends
    (True, result) or reaches an async call (False, (call, args)) for the caller to await.
    A prediction whose request ended (timed out, its client left, cancelled) starts no
    further step: Stopped."""
    try:
        while True:
            call, args = plan.send(value)
            if cancelled():
                close_streams(args)
                plan.close()
                raise Stopped(f"its request ended before {call.where}")
            if call.is_async:
                if getattr(call, "batched", False):  # a batched stage that is idle runs here and now
                    ran, result = call.try_now(*args)  # type: ignore[attr-defined]
                    if ran:
                        value = result
                        continue
                return False, (call, args)
            value = call(*args)
    except StopIteration as stop:
        return True, stop.value


def run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Await a coroutine from synchronous code, even where this thread runs an event
    loop already (a notebook): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        looping = False
    else:
        looping = True
    if not looping:
        return asyncio.run(coroutine)
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="conduit-await")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def load_stage(spec: ServerSpec, index: int, stage: StageSpec,
               observe_batch: Callable[[str, int, bool], None] | None = None) -> Stage:
    model = load_model(spec.project_dir, stage.type, stage.file, stage.options, spec.gpu, stage.max_new_tokens)
    pre = load_object(spec.project_dir, stage.pre) if stage.pre else None
    post = load_object(spec.project_dir, stage.post) if stage.post else None
    built = Stage.build(f"models[{index}] ({stage.type})", model, pre, post)
    if stage.batch is None:
        return built
    observe = functools.partial(observe_batch, str(index)) if observe_batch is not None else None
    return dataclasses.replace(built, batch=Batcher(built.model, stage.batch.max_size, stage.batch.max_wait_ms, observe,
                                                    built.label))

"""The model service behind the HTTP layer: loading, warm-up, readiness, and
running predictions in worker threads with bounded concurrency and queue.

The Python API (`Conduit.run`) and the server share this, so both answer with
the same envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .errors import ModelFailed, NotReady, Overloaded
from .files import as_upload
from .flow import Flow
from .protocol import Request, as_rows, check_data
from .spec import ServerSpec


class Service:
    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.flow: Flow | None = None
        self.ready = False
        self.problem = "the model is loading"
        self._pool = ThreadPoolExecutor(spec.max_concurrency, thread_name_prefix="conduit-model")
        self._slots: asyncio.Semaphore | None = None
        self.running = 0
        self.queued = 0

    # -- start-up ---------------------------------------------------------
    def load(self) -> None:
        """Load every stage once, then warm up with the first `tests:` example."""
        started = time.perf_counter()
        try:
            self.flow = Flow.load(self.spec)
            if self.spec.warmup is not None:
                self.problem = f"warming up with example {self.spec.warmup.name!r}"
                self.predict(self.warmup_request())
        except Exception as exc:
            self.problem = f"start-up failed: {type(exc).__name__}: {exc}"[:1000]
            log({"event": "load_failed", "error": self.problem})
            raise
        # Objects alive now live for the whole process: keep the collector off them.
        gc.collect()
        gc.freeze()
        self.ready = True
        self.problem = ""
        log({"event": "ready", "load_ms": round((time.perf_counter() - started) * 1000, 1)})

    def warmup_request(self) -> Request:
        example = self.spec.warmup
        assert example is not None
        files = [as_upload(self.spec.project_dir / name, i) for i, name in enumerate(example.files)]
        data = example.data
        if isinstance(data, dict):
            return Request(check_data(data.get("data")), data.get("parameters") or {}, files)
        return Request(check_data(data if data is not None else []), {}, files)

    # -- predictions ------------------------------------------------------
    def predict(self, request: Request) -> list[Any]:
        """Run the flow in the calling thread; the result rows."""
        if self.flow is None:
            raise NotReady(self.problem)
        try:
            return as_rows(self.flow.run(request.data, request.files, request.parameters))
        except (SystemExit, KeyboardInterrupt, GeneratorExit) as exc:
            # Not the server's to end: a model calling sys.exit() fails this request only.
            raise ModelFailed(f"the model raised {type(exc).__name__}") from None

    async def predict_async(self, request: Request) -> list[Any]:
        """Run in a worker thread, at most max_concurrency at once, max_queue waiting."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.spec.max_concurrency)
        slots = self._slots
        if slots.locked():
            if self.queued >= self.spec.max_queue:
                request.close()
                raise Overloaded(
                    f"{self.running} predictions are running and {self.queued} are waiting; retry later"
                )
            self.queued += 1
            try:
                await slots.acquire()
            except BaseException:
                request.close()
                raise
            finally:
                self.queued -= 1
        else:
            await slots.acquire()
        self.running += 1
        job = self._pool.submit(self.predict, request)
        finished_here = True
        try:
            return await asyncio.wrap_future(job)
        except BaseException:
            if not job.done():
                # Timed out while the thread still runs: free its slot when it ends, not before.
                finished_here = False
                loop = asyncio.get_running_loop()
                job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release, request))
            raise
        finally:
            if finished_here:
                self._release(request)

    def _release(self, request: Request) -> None:
        self.running -= 1
        assert self._slots is not None
        self._slots.release()
        request.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def log(record: dict[str, Any]) -> None:
    """One JSON object per line on stdout, for log collectors."""
    write_line(json.dumps(record, separators=(",", ":")))


def log_prediction(run_id: str, prediction_ids: list[str], status: int, run_time_ms: float) -> None:
    """The line of every prediction, formatted by hand: it is on the hot path, and every
    value is already safe JSON (a UUID, hex ids, numbers)."""
    ids = ",".join(f'"{id_}"' for id_ in prediction_ids)
    write_line(f'{{"event":"prediction","run_id":"{run_id}","prediction_ids":[{ids}],'
               f'"status":{status},"run_time_ms":{run_time_ms}}}')


def write_line(line: str) -> None:
    # One unbuffered write a line: nothing waits in a buffer, and lines never interleave.
    try:
        os.write(sys.stdout.fileno(), (line + "\n").encode())
    except (OSError, ValueError):  # no usable stdout (closed, or replaced by an object without a file)
        with contextlib.suppress(Exception):
            sys.stdout.write(line + "\n")


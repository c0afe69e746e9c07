"""The model service behind the HTTP layer: loading, warm-up, readiness and
shutdown, and the worker threads predictions run in.

The Python API (`Conduit.run`) and the warm-up call `predict` in their own
thread; the server runs predictions through predict/, in `pool`.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .errors import NotReady
from .files import as_upload
from .flow import Flow
from .loaders import NoGPU
from .log import exception_record, log
from .oip import parse_infer
from .protocol import Request, as_rows, check_data, dumps
from .spec import ServerSpec

LOADING = "the model is loading"
FAILED = "start-up failed; the server's log says why"
DRAINING = "the server is shutting down"


class Service:
    def __init__(self, spec: ServerSpec, observe_batch: Callable[[str, int], None] | None = None) -> None:
        self.spec = spec
        self.observe_batch = observe_batch  # the batch-size histogram, for batched stages
        self.flow: Flow | None = None
        self.ready = False
        self.problem = LOADING  # why not ready, as a client may read it (no internals)
        self.draining = False
        self.failed = False  # start-up failed for good: /ready says startup_failed
        self.pool = ThreadPoolExecutor(spec.max_concurrency, thread_name_prefix="conduit-model")

    # -- start-up ---------------------------------------------------------
    def load(self) -> None:
        """Load every stage once, then warm up with the first `tests:` example."""
        started = time.perf_counter()
        try:
            self.flow = Flow.load(self.spec, self.observe_batch)
            if self.spec.warmup is not None:
                self.problem = f"warming up with example {self.spec.warmup.name!r}"
                self.predict(self.warmup_request())
        except NoGPU as exc:  # not a bug to trace: the one line says what is missing
            self.problem = FAILED
            self.failed = True
            log({"event": "load_failed", "error": str(exc)})
            raise
        except Exception as exc:
            self.problem = FAILED
            self.failed = True
            log({"event": "load_failed", "error": f"{type(exc).__name__}: {exc}"[:1000], **exception_record(exc)})
            raise
        # Objects alive now live for the whole process: keep the collector off them.
        gc.collect()
        gc.freeze()
        if self.draining:  # told to stop while loading
            return
        self.ready = True
        self.problem = ""
        log({"event": "ready", "load_ms": round((time.perf_counter() - started) * 1000, 1)})

    def warmup_request(self) -> Request:
        example = self.spec.warmup
        assert example is not None
        if example.v2 is not None:
            return parse_infer(dumps(example.v2), None).to_request()
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
        return as_rows(self.flow.run(request.data, request.files, request.parameters))

    # -- shutdown -----------------------------------------------------------
    def drain(self) -> None:
        """Not ready from now on: new predictions get 503, those admitted finish."""
        self.draining = True
        self.ready = False
        self.problem = DRAINING

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        for batcher in self.flow.batchers if self.flow is not None else ():
            batcher.close()

"""The model service: loading, warm-up, the state readiness is told from (http/readiness.py),
shutdown, and the worker threads predictions run in.

The Python API (`Conduit.run`) and the warm-up call `predict` in their own
thread; the server runs predictions through http/, in `pool`.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..errors import NotReady
from ..log import exception_record, log
from ..spec import ServerSpec
from .flow import Flow
from .loaders import NoGPU

if TYPE_CHECKING:
    from ..weights.startup import Fetched

LOADING = "the model is loading"
FETCHING = "fetching the model weights"
START_FAILED = "start-up failed; the server's log says why"
DRAINING = "the server is shutting down"

# The warm-up's input: (data, files, parameters) of the first `tests:` example (wire/examples.py).
Warmup = Callable[[], tuple[Any, list[Any], dict[str, Any]]]


class Service:
    def __init__(self, spec: ServerSpec, observe_batch: Callable[[str, int, bool], None] | None = None,
                 warmup: Warmup | None = None) -> None:
        self.spec = spec
        self.warmup = warmup
        self.observe_batch = observe_batch  # the batch-size histogram and failed batches, for batched stages
        self.flow: Flow | None = None
        self.ready = False
        self.problem = LOADING  # why not ready, as a client may read it (no internals)
        self.draining = False
        self.failed = False  # start-up failed for good: /ready says startup_failed
        self.pool = ThreadPoolExecutor(spec.max_concurrency, thread_name_prefix="conduit-model")
        self.weights: Fetched | None = None  # image.weights: separate, once fetched and verified

    # -- start-up ---------------------------------------------------------
    def fetch_weights(self) -> None:
        """image.weights: separate: the weights verified and made active before any model loads
        (weights/startup.py). A failure is one `startup_failed` line naming the artifact and the
        file, never a traceback; /ready then says startup_failed."""
        from ..weights import WeightsError  # imported only by an image whose weights are separate
        from ..weights.startup import prepare

        assert self.spec.weights is not None
        self.problem = FETCHING
        try:
            self.weights = prepare(self.spec.weights)
        except Exception as exc:
            error = exc if isinstance(exc, WeightsError) else WeightsError(f"{type(exc).__name__}: {exc}"[:1000])
            self.problem = START_FAILED
            self.failed = True
            log({"event": "startup_failed", **error.record()})
            raise
        self.problem = LOADING

    def load(self) -> None:
        """Load every stage once, then warm up with the first `tests:` example (the weights
        fetched first, when they are not in the image)."""
        started = time.perf_counter()
        if self.spec.weights is not None:
            self.fetch_weights()
        try:
            self.flow = Flow.load(self.spec, self.observe_batch)
            if self.warmup is not None and self.spec.warmup is not None:
                self.problem = f"warming up with example {self.spec.warmup.name!r}"
                self.predict(*self.warmup())
        except NoGPU as exc:  # not a bug to trace: the one line says what is missing
            self.problem = START_FAILED
            self.failed = True
            log({"event": "load_failed", "error": str(exc)})
            raise
        except Exception as exc:
            self.problem = START_FAILED
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

    # -- predictions ------------------------------------------------------
    def predict(self, data: Any, files: list[Any], parameters: dict[str, Any]) -> Any:
        """Run the flow in the calling thread; its output."""
        if self.flow is None:
            raise NotReady(self.problem)
        return self.flow.run(data, files, parameters)

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

"""Run the app under uvicorn: the same call in a container and in `conduit serve`.

Shutdown drains without errors: on SIGTERM /ready answers 503 at once, while
predictions are still admitted for server.drain_delay_s, the time load balancers
(Kubernetes endpoints, an ingress) take to stop routing here; then new predictions
answer 503, the listening socket staying open so that clients get that answer
rather than a refused connection, predictions already admitted finish (up to
server.timeout_s), and the process exits 0. Ctrl-C (SIGINT) is a person at a
terminal, where no balancer routes: it skips the delay, and a second one quits at once.

With `server.workers` > 1 this process is a supervisor (supervisor.py) that starts
that many worker processes (worker.py) on one listening socket.

Here the layers meet: the app (http/) gets its async predictions (jobs/).
"""

from __future__ import annotations

import signal
import time
from types import FrameType

import uvicorn

from ..http.app import ConduitApp, create_app
from ..jobs.predictions import Predictions
from ..spec import ServerSpec


def serve(spec: ServerSpec, host: str = "0.0.0.0", port: int | None = None, debug: bool = False) -> None:
    workers = spec.worker_count
    if workers > 1:
        from .supervisor import Supervisor

        Supervisor(spec, host, port or spec.port, debug, workers).run()
        return
    draining_server(spec, host, port or spec.port, debug).run()


def draining_server(spec: ServerSpec, host: str, port: int, debug: bool) -> DrainingServer:
    app = create_app(spec, debug=debug, async_work=Predictions)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,  # one JSON line per prediction is logged by the app itself
        server_header=False,
        # A safety net against connection floods, well above what admission takes: those
        # past admission get our 429 at once, not uvicorn's plain-text 503. An idle or
        # refused connection costs little (uvicorn stops reading a body past 64 KiB).
        limit_concurrency=10 * (spec.running_slots + spec.max_queue) + 100,
        timeout_graceful_shutdown=5,  # what is left once the app has drained: idle connections
    )
    return DrainingServer(config, app, delay_s=spec.drain_delay_s, drain_s=spec.timeout_s + 1)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: ConduitApp, delay_s: float, drain_s: float) -> None:
        super().__init__(config)
        self.app = app
        self.delay_s = delay_s
        self.drain_s = drain_s
        self.admit_until: float | None = None  # set by the first signal
        self.deadline = 0.0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded as a captured signal: uvicorn would raise it again after shutdown,
        # and the process would end by the signal instead of exiting 0.
        if self.admit_until is None:
            # A server that is not ready gets no traffic to finish: it stops admitting at once.
            delay = self.delay_s if sig == signal.SIGTERM and self.app.service.ready else 0.0
            self.admit_until = time.monotonic() + delay
            self.deadline = self.admit_until + self.drain_s
            self.app.drain(delay)
            if not delay:
                self.app.stop_admitting()
        elif sig == signal.SIGINT:
            self.should_exit = self.force_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.admit_until is not None and time.monotonic() >= self.admit_until:
            self.app.stop_admitting()
            if self.app.drained or time.monotonic() > self.deadline:
                self.should_exit = True
        return await super().on_tick(counter)

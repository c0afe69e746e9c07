"""Run the app under uvicorn: the same call in a container and in `conduit serve`.

Shutdown drains: on SIGTERM (or Ctrl-C) /ready and new predictions answer 503
at once, the listening socket stays open so that clients get that answer rather
than a refused connection, predictions already admitted finish (up to
server.timeout_s), and then the process exits 0. A second Ctrl-C quits at once.
"""

from __future__ import annotations

import signal
import time
from types import FrameType

import uvicorn

from .app import ConduitApp, create_app
from .spec import ServerSpec


def serve(spec: ServerSpec, host: str = "0.0.0.0", port: int | None = None, debug: bool = False) -> None:
    app = create_app(spec, debug=debug)
    config = uvicorn.Config(
        app,
        host=host,
        port=port or spec.port,
        log_level="warning",
        access_log=False,  # one JSON line per prediction is logged by the app itself
        server_header=False,
        # A safety net against connection floods, well above what admission takes: those
        # past admission get our 429 at once, not uvicorn's plain-text 503. An idle or
        # refused connection costs little (uvicorn stops reading a body past 64 KiB).
        limit_concurrency=10 * (spec.max_concurrency + spec.max_queue) + 100,
        timeout_graceful_shutdown=5,  # what is left once the app has drained: idle connections
    )
    DrainingServer(config, app, drain_s=spec.timeout_s + 1).run()


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: ConduitApp, drain_s: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_s = drain_s
        self.deadline: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded as a captured signal: uvicorn would raise it again after shutdown,
        # and the process would end by the signal instead of exiting 0.
        if self.deadline is None:
            self.deadline = time.monotonic() + self.drain_s
            self.app.drain()
        elif sig == signal.SIGINT:
            self.should_exit = self.force_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.deadline is not None and (self.app.drained or time.monotonic() > self.deadline):
            self.should_exit = True
        return await super().on_tick(counter)

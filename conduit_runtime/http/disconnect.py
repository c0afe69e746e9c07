"""Notice a client that leaves while its prediction runs, and set the job's
`cancel` flag (what `conduit_runtime.cancelled()` reads), so that a model that
looks at it stops early.

Once the body is read, the next ASGI message a request gets is `http.disconnect`;
waiting for it takes a task. A prediction that ends within `AFTER_S` (nearly all
of them) never gets one: it costs one timer, set and cancelled, and the hot path
stays as fast as it was. A client that left before the watch starts is still
seen: receive() then answers `http.disconnect` at once.
"""

from __future__ import annotations

import asyncio
import threading

from .body import Receive

AFTER_S = 0.02


class DisconnectWatch:
    __slots__ = ("cancel", "receive", "task", "timer")

    def __init__(self, cancel: threading.Event, receive: Receive) -> None:
        self.cancel = cancel
        self.receive = receive
        self.task: asyncio.Task[None] | None = None
        self.timer = asyncio.get_running_loop().call_later(AFTER_S, self.start)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.wait())

    async def wait(self) -> None:
        # An empty `http.request` may still come after the body on some servers: not a
        # leave (bounded, so that a server answering those at once never spins the loop).
        for _ in range(100):
            if (await self.receive())["type"] != "http.request":
                self.cancel.set()
                return

    def stop(self) -> None:
        self.timer.cancel()
        if self.task is not None:
            self.task.cancel()

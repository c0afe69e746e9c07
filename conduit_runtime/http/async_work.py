"""What the HTTP layer needs of async predictions (jobs/predictions.py is the one that
serves it): the HTTP layer sits below jobs/, so it names the shape here and the process
that assembles the server (process/server.py) hands the real one in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..model.service import Service
from .admission import Admission
from .body import Body


class AsyncWork(Protocol):
    signs_webhooks: bool  # a webhook secret is set: requests may name a webhook

    async def wanted(self, prefer: bytes | None, body: Body) -> bool:
        """The request asks to be answered 202 at once (Prefer: respond-async, or a webhook)."""

    async def accept(self, body: Body, run_id: str, request_id: str) -> tuple[bytes, str]:
        """The 202's body and the prediction's id (429 when the async queue is full);
        request_id goes into every log line of the prediction."""

    async def get(self, id_: str) -> bytes | None:
        """The prediction object (None: unknown id)."""

    async def cancel(self, id_: str) -> bytes | None:
        """Cancel it; the prediction object after (None: unknown id)."""

    def running_count(self) -> int:
        """Async predictions this process runs now (a gauge of /metrics)."""

    def start(self) -> None:
        """Begin taking queued work (on the running event loop)."""

    async def close(self) -> None:
        """Shutdown: hand held work back, stop deliveries."""


# (service, admission, debug) -> the async predictions of one app
AsyncWorkFactory = Callable[[Service, Admission, bool], AsyncWork]

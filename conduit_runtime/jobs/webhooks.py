"""Webhooks: each event of an async prediction POSTs the prediction object to the URL
the request named, signed per the Standard Webhooks specification (`webhook-id`,
`webhook-timestamp`, `webhook-signature`: HMAC-SHA256 with the secret in the variable
named by `server.webhook_secret_env`, by the `standardwebhooks` package).

Deliveries are tasks on the event loop, never a worker thread: a slow or dead receiver
holds nothing but its own task. A connection error or a 5xx is tried again after
BACKOFF_S, doubling, at most TRIES times and never past TOTAL_S; every failed try and
a delivery given up are logged. The events of one prediction go out in order. At
shutdown whatever is still being delivered is dropped (and logged), not waited for.

Every connection goes to an address judged by webhook_targets.py at that moment: the
client is httpcore's pool over a network backend that resolves the host, judges each
address and connects to one of those — the URL keeps its name, so the Host header, TLS
SNI and the certificate check are the name's, and a pooled connection is keyed by the
name it was checked for. (Rewriting the URL to the address instead would need the Host
header and `sni_hostname` set by hand, and the pool would share one TLS connection
between names of one address.) A refused host fails the delivery at once, logged, and is
never connected to. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import httpcore
from standardwebhooks import Webhook

from ..log import log
from .webhook_targets import NotAllowed, Targets

TRIES = 6
BACKOFF_S = 0.5
TOTAL_S = 60.0
TIMEOUT_S = 10.0
TIMEOUTS = {"connect": TIMEOUT_S, "read": TIMEOUT_S, "write": TIMEOUT_S, "pool": TIMEOUT_S}
FAILURES = (httpcore.NetworkError, httpcore.TimeoutException, httpcore.ProtocolError, httpcore.UnsupportedProtocol)


def signer(secret: str) -> Webhook | None:
    """The signer of a Standard Webhooks secret (`whsec_` + base64); None: webhooks are off."""
    try:
        return Webhook(secret)
    except Exception:
        log({"event": "warning", "message": "the webhook secret is not a Standard Webhooks secret "
                                            "(whsec_ followed by base64): webhooks are off"})
        return None


def url_headers(url: str) -> dict[str | bytes, str | bytes]:
    """What httpx made of the URL and httpcore does not: Host as written (an IPv6 address in
    brackets), and Basic credentials from its userinfo."""
    parts = urlsplit(url)
    headers: dict[str | bytes, str | bytes] = {"host": parts.netloc.rpartition("@")[2]}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return headers


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to an address of the host that its targets allow."""

    def __init__(self, targets: Targets) -> None:
        self.targets = targets
        self.backend = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        failure: Exception = httpcore.ConnectError(f"{host} has no address")
        try:
            addresses = await self.targets.addresses(host, port)  # NotAllowed: no connection at all
        except OSError as exc:  # the name does not resolve: a connection error, tried again
            raise httpcore.ConnectError(f"{host}: {exc}") from exc
        for address in addresses:
            try:
                return await self.backend.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self.backend.sleep(seconds)


class Webhooks:
    def __init__(self, signer: Webhook, targets: Targets) -> None:
        self.signer = signer
        self.targets = targets
        self.client: httpcore.AsyncConnectionPool | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.last: dict[str, asyncio.Task[None]] = {}  # per prediction: its events in order
        self.backoff_s = BACKOFF_S

    def send(self, prediction_id: str, url: str, event: str, body: bytes, request_id: str | None = None) -> None:
        previous = self.last.get(prediction_id)
        task = asyncio.ensure_future(self.deliver(previous, prediction_id, url, event, body, request_id))
        self.tasks.add(task)
        self.last[prediction_id] = task

        def done(task: asyncio.Task[None]) -> None:
            self.tasks.discard(task)
            if self.last.get(prediction_id) is task:
                del self.last[prediction_id]

        task.add_done_callback(done)

    async def deliver(self, previous: asyncio.Task[None] | None, prediction_id: str, url: str, event: str,
                      body: bytes, request_id: str | None) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        if self.client is None:
            self.client = httpcore.AsyncConnectionPool(  # httpx's default limits
                max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0,
                network_backend=CheckedBackend(self.targets))
        message_id = f"msg_{uuid.uuid4().hex}"  # the same on every try: the receiver can drop repeats
        text = body.decode()
        began = time.monotonic()
        wait = self.backoff_s
        fixed = url_headers(url)
        record = {"event": "webhook", "prediction_id": prediction_id, "request_id": request_id,
                  "webhook_event": event, "webhook_id": message_id}
        for attempt in range(1, TRIES + 1):
            now = datetime.now(tz=UTC)
            headers: dict[str | bytes, str | bytes] = {
                **fixed,
                "content-type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": self.signer.sign(message_id, now, text),
            }
            try:
                answer = await self.client.request("POST", url, headers=headers, content=body,
                                                   extensions={"timeout": TIMEOUTS})
                problem = f"answered {answer.status}" if answer.status >= 500 else ""
                if not problem:
                    if answer.status >= 400:  # the receiver refuses it: trying again will not help
                        log({**record, "status": "refused", "attempt": attempt, "code": answer.status})
                    return
            except NotAllowed as exc:  # judged again at delivery: never tried again, never connected
                log({**record, "status": "not_allowed", "attempt": attempt, "problem": str(exc)})
                return
            except FAILURES as exc:
                problem = f"{type(exc).__name__}: {exc}"[:300]
            last = attempt == TRIES or time.monotonic() - began + wait > TOTAL_S
            log({**record, "status": "given_up" if last else "retrying", "attempt": attempt, "problem": problem})
            if last:
                return
            await asyncio.sleep(wait)
            wait *= 2

    async def close(self) -> None:
        pending = [task for task in self.tasks if not task.done()]
        if pending:
            log({"event": "webhook", "status": "dropped", "deliveries": len(pending),
                 "message": "the server is shutting down: webhook deliveries still under way are dropped"})
        for task in pending:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.aclose()

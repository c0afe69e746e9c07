"""Webhooks: each event of an async prediction POSTs the prediction object to the URL
the request named, signed per the Standard Webhooks specification (`webhook-id`,
`webhook-timestamp`, `webhook-signature`: HMAC-SHA256 with the secret in the variable
named by `server.webhook_secret_env`, by the `standardwebhooks` package).

Deliveries are tasks on the event loop, never a worker thread: a slow or dead receiver
holds nothing but its own task. A connection error or a 5xx is tried again after
BACKOFF_S, doubling, at most TRIES times and never past TOTAL_S; every failed try and
a delivery given up are logged. The events of one prediction go out in order. At
shutdown whatever is still being delivered is dropped (and logged), not waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from ..log import log

TRIES = 6
BACKOFF_S = 0.5
TOTAL_S = 60.0
TIMEOUT_S = 10.0


def signer(secret: str) -> Webhook | None:
    """The signer of a Standard Webhooks secret (`whsec_` + base64); None: webhooks are off."""
    try:
        return Webhook(secret)
    except Exception:
        log({"event": "warning", "message": "the webhook secret is not a Standard Webhooks secret "
                                            "(whsec_ followed by base64): webhooks are off"})
        return None


class Webhooks:
    def __init__(self, signer: Webhook) -> None:
        self.signer = signer
        self.client: httpx.AsyncClient | None = None
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
            self.client = httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False)
        message_id = f"msg_{uuid.uuid4().hex}"  # the same on every try: the receiver can drop repeats
        text = body.decode()
        began = time.monotonic()
        wait = self.backoff_s
        record = {"event": "webhook", "prediction_id": prediction_id, "request_id": request_id,
                  "webhook_event": event, "webhook_id": message_id}
        for attempt in range(1, TRIES + 1):
            now = datetime.now(tz=UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": self.signer.sign(message_id, now, text),
            }
            try:
                answer = await self.client.post(url, content=body, headers=headers)
                problem = f"answered {answer.status_code}" if answer.status_code >= 500 else ""
                if not problem:
                    if answer.status_code >= 400:  # the receiver refuses it: trying again will not help
                        log({**record, "status": "refused", "attempt": attempt, "code": answer.status_code})
                    return
            except httpx.HTTPError as exc:
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

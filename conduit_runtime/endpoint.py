"""POST /predict as a plain ASGI endpoint: the one hot route of the server.

It reads the few headers it needs in one pass over the raw list and answers
with two ASGI messages, skipping the router, middleware and Request/Response
objects that every other route goes through: about a tenth of a small
prediction's cost. Every answer, error or not, is one JSON body, one log line
and one metrics sample.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import ClientDisconnect

from .errors import ModelFailed, NotReady, ServerError, TimedOut, Unauthorized
from .metrics import Metrics
from .protocol import Receive, dumps, envelope, error_body, read_request
from .service import Service, log, log_prediction

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class PredictEndpoint:
    def __init__(self, service: Service, metrics: Metrics, key: bytes) -> None:
        self.service = service
        self.metrics = metrics
        self.key = key
        self.limit = service.spec.max_body_bytes
        self.timeout_s = service.spec.timeout_s

    def authorize(self, header: bytes | None) -> None:
        if not self.key:
            return
        if not header:
            raise Unauthorized("send the API key: 'Authorization: <key>' or 'Authorization: Bearer <key>'")
        scheme, _, rest = header.partition(b" ")
        given = rest.strip() if scheme.lower() == b"bearer" else header.strip()
        if not hmac.compare_digest(given, self.key):
            raise Unauthorized("the API key is wrong")

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        arrived = time.perf_counter()
        run_id = str(uuid.uuid4())
        authorization = content_type = content_length = request_id = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value
            elif name == b"x-request-id":
                request_id = value
        prediction_ids: list[str] = []
        try:
            self.authorize(authorization)
            if not self.service.ready:
                raise NotReady(self.service.problem)
            try:
                # timeout_s runs from arrival: reading the body and queueing count too.
                async with asyncio.timeout(self.timeout_s):
                    request = await read_request(content_type, content_length, receive, self.limit)
                    rows = await self.service.predict_async(request)
            except TimeoutError:
                raise TimedOut(f"no answer within server.timeout_s = {self.timeout_s:g} s") from None
            elapsed_ms = round((time.perf_counter() - arrived) * 1000, 3)
            answer = envelope(rows, run_id, elapsed_ms)
            try:
                content = dumps(answer)
            except TypeError as exc:
                raise ModelFailed(str(exc)) from None
            prediction_ids, status = answer["prediction_ids"], 200
        except ServerError as error:
            content, status = error_body(error, run_id), error.status
            elapsed_ms = round((time.perf_counter() - arrived) * 1000, 3)
        except ClientDisconnect:
            return  # nobody is left to answer
        except Exception as exc:  # a bug of ours: still one JSON answer, never a traceback
            log({"event": "internal_error", "error": f"{type(exc).__name__}: {exc}"[:500]})
            content, status = error_body(ServerError("the server failed; see its log"), run_id), 500
            elapsed_ms = round((time.perf_counter() - arrived) * 1000, 3)
        self.metrics.observe(status, elapsed_ms / 1000)
        log_prediction(run_id, prediction_ids, status, elapsed_ms)
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                (b"x-request-id", request_id or run_id.encode()),
            ],
        })
        await send({"type": "http.response.body", "body": content})

"""The HTTP server: routes of DESIGN §3 over a Service."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as HTTPRequest
from starlette.responses import Response
from starlette.routing import Route

from .errors import (
    MethodNotAllowed,
    ModelFailed,
    NotFound,
    NotReady,
    ServerError,
    TimedOut,
    Unauthorized,
)
from .metrics import Metrics
from .openapi import openapi
from .protocol import dumps, envelope, error_body, read_request
from .service import Service, log, log_prediction
from .spec import ServerSpec

JSON = "application/json"


def create_app(spec: ServerSpec, api_key: str | None = None) -> Starlette:
    """The ASGI app; the model loads in a thread once the server is up."""
    service = Service(spec)
    metrics = Metrics(spec.name)
    key = (api_key if api_key is not None else os.environ.get(spec.api_key_env, "")).encode()
    schema = dumps(openapi(spec, secured=bool(key)))

    def authorize(header: str | None) -> None:
        if not key:
            return
        if not header:
            raise Unauthorized("send the API key: 'Authorization: <key>' or 'Authorization: Bearer <key>'")
        scheme, _, rest = header.partition(" ")
        given = rest.strip() if scheme.lower() == "bearer" else header.strip()
        # Starlette decodes headers as latin-1: encoding back gives the bytes the client sent.
        if not hmac.compare_digest(given.encode("latin-1"), key):
            raise Unauthorized("the API key is wrong")

    async def predict(request: HTTPRequest) -> Response:
        arrived = time.perf_counter()
        run_id = str(uuid.uuid4())
        rows: list[Any] = []
        try:
            authorize(request.headers.get("authorization"))
            if not service.ready:
                raise NotReady(service.problem)
            try:
                # timeout_s runs from arrival: reading the body and queueing count too.
                async with asyncio.timeout(spec.timeout_s):
                    body = await read_request(request.headers, request.receive, spec.max_body_bytes)
                    rows = await service.predict_async(body)
            except TimeoutError:
                raise TimedOut(f"no answer within server.timeout_s = {spec.timeout_s} s") from None
            elapsed_ms = (time.perf_counter() - arrived) * 1000
            answer = envelope(rows, run_id, round(elapsed_ms, 3))
            try:
                content = dumps(answer)
            except TypeError as exc:
                raise ModelFailed(str(exc)) from None
            status = 200
        except ServerError as error:
            content, status, answer = error_body(error, run_id), error.status, {"prediction_ids": []}
            elapsed_ms = (time.perf_counter() - arrived) * 1000
        metrics.observe(status, elapsed_ms / 1000)
        log_prediction(run_id, answer["prediction_ids"], status, round(elapsed_ms, 3))
        request_id = request.headers.get("x-request-id") or run_id
        return Response(content, status, headers={"x-request-id": request_id}, media_type=JSON)

    async def health(request: HTTPRequest) -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    async def ready(request: HTTPRequest) -> Response:
        if service.ready:
            return Response(b'{"status":"ready"}', media_type=JSON)
        return error_response(NotReady(service.problem))

    async def openapi_json(request: HTTPRequest) -> Response:
        return Response(schema, media_type=JSON)

    async def metrics_text(request: HTTPRequest) -> Response:
        text = metrics.render({
            "conduit_ready": ("1 once the model is loaded and warmed up.", lambda: int(service.ready)),
            "conduit_predictions_running": ("Predictions running now.", lambda: service.running),
            "conduit_predictions_queued": ("Predictions waiting for a slot.", lambda: service.queued),
        })
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def http_error(request: HTTPRequest, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            answer = error_response(MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}"))
            answer.headers.update(exc.headers or {})  # Allow: the methods that are
            return answer
        if exc.status_code == 404:
            return error_response(NotFound(f"no route {request.url.path}; try POST /predict"))
        return error_response(ServerError(str(exc.detail)), exc.status_code)

    async def internal_error(request: HTTPRequest, exc: Exception) -> Response:
        log({"event": "internal_error", "error": f"{type(exc).__name__}: {exc}"[:500]})
        return error_response(ServerError("the server failed; see its log"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not key:
            log({"event": "warning", "message": f"{spec.api_key_env} is not set: /predict needs no key"})
        # Load beside the event loop, so /health answers while the model loads.
        loader = threading.Thread(target=load_quietly, args=(service,), name="conduit-load", daemon=True)
        loader.start()
        yield
        service.close()

    app = Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/metrics", metrics_text, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        lifespan=lifespan,
    )
    app.state.service = service
    return app


def load_quietly(service: Service) -> None:
    with contextlib.suppress(Exception):  # already logged; /ready reports it
        service.load()


def error_response(error: ServerError, status: int | None = None) -> Response:
    return Response(error_body(error, str(uuid.uuid4())), status or error.status, media_type=JSON)

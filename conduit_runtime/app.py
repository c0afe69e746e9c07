"""The HTTP server: routes of DESIGN §3 over a Service (POST /predict in predict/)."""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as HTTPRequest
from starlette.responses import Response
from starlette.routing import Route

from .errors import MethodNotAllowed, NotFound, NotReady, ServerError
from .log import exception_record, log
from .metrics import Metrics
from .oip_routes import oip_routes
from .openapi import openapi
from .predict import PredictEndpoint
from .predict.admission import Admission
from .predict.body import Receive
from .predict.endpoint import Send
from .predict.v2 import InferEndpoint
from .protocol import dumps, error_body
from .service import Service
from .spec import ServerSpec

JSON = "application/json"


WEDGED = "every prediction slot is held by a call running past server.timeout_s"


def create_app(spec: ServerSpec, api_key: str | None = None, debug: bool = False) -> ConduitApp:
    """The ASGI app; the model loads in a thread once the server is up. `debug` puts
    what went wrong inside into 500 bodies: for local development only."""
    service = Service(spec)
    admission = Admission(spec.max_concurrency, spec.max_queue)
    metrics = Metrics(spec.name)
    key = (api_key if api_key is not None else os.environ.get(spec.api_key_env, "")).encode()
    schemas: dict[bool, bytes] = {}  # by readiness: once loaded, the model says what its data is

    async def health(request: HTTPRequest) -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    async def ready(request: HTTPRequest) -> Response:
        if not service.ready:
            # A start-up that failed will not get better: the code says so (deploy and
            # `conduit test` stop waiting at once), the message never says why (the log does).
            return error_response(NotReady(service.problem, "startup_failed" if service.failed else None))
        if admission.wedged:
            return error_response(NotReady(WEDGED))
        return Response(b'{"status":"ready"}', media_type=JSON)

    async def openapi_json(request: HTTPRequest) -> Response:
        loaded = service.flow is not None
        if loaded not in schemas:
            features = service.flow.features if service.flow is not None else None
            signature = service.flow.signature if service.flow is not None else None
            schemas[loaded] = dumps(openapi(spec, secured=bool(key), features=features, signature=signature))
        return Response(schemas[loaded], media_type=JSON)

    async def metrics_text(request: HTTPRequest) -> Response:
        text = metrics.render({
            "conduit_ready": ("1 once the model is loaded and warmed up.", lambda: int(service.ready)),
            "conduit_predictions_running": ("Predictions running now.", lambda: admission.running),
            "conduit_predictions_queued": ("Predictions waiting for a slot.", lambda: admission.waiting),
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
        log({"event": "internal_error", "path": request.url.path, **exception_record(exc)})
        return error_response(ServerError("the server failed; see its log"))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if not key:
            log({"event": "warning", "message": f"{spec.api_key_env} is not set: /predict needs no key"})
        # Load beside the event loop, so /health answers while the model loads.
        loader = threading.Thread(target=load_quietly, args=(service,), name="conduit-load", daemon=True)
        loader.start()
        yield
        service.close()

    async def predict_not_here(request: HTTPRequest) -> Response:
        raise HTTPException(405, headers={"Allow": "POST"})  # POST itself never reaches Starlette

    routes = Starlette(
        routes=[
            Route("/predict", predict_not_here, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/metrics", metrics_text, methods=["GET"]),
            *oip_routes(service, admission, InferEndpoint(service, admission, metrics, key, debug)),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        lifespan=lifespan,
    )
    return ConduitApp(PredictEndpoint(service, admission, metrics, key, debug), routes, service, admission)


class ConduitApp:
    """POST /predict straight to its endpoint; every other route through Starlette."""

    def __init__(self, predict: PredictEndpoint, routes: Starlette, service: Service, admission: Admission) -> None:
        self.predict = predict
        self.routes = routes
        self.service = service
        self.admission = admission

    def drain(self) -> None:
        """Shutdown begins: /ready and new predictions answer 503 from now on."""
        if not self.service.draining:
            log({"event": "draining", "in_flight": self.admission.busy})
        self.service.drain()

    @property
    def drained(self) -> bool:
        """No admitted request waits for an answer any more."""
        return self.admission.busy == 0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/predict":
            await self.predict(scope, receive, send)
        else:
            await self.routes(scope, receive, send)


def load_quietly(service: Service) -> None:
    with contextlib.suppress(Exception):  # already logged; /ready reports it
        service.load()


def error_response(error: ServerError, status: int | None = None) -> Response:
    return Response(error_body(error, str(uuid.uuid4())), status or error.status, media_type=JSON)

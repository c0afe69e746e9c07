"""The HTTP server: routes of DESIGN §3 over a Service (POST /predict in predict/)."""

from __future__ import annotations

import asyncio
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
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .metrics import Metrics
from .oip_routes import oip_routes
from .openapi import openapi
from .predict import PredictEndpoint
from .predict.admission import Admission
from .predict.body import Receive
from .predict.endpoint import Send
from .predict.predictions import Predictions
from .predict.v2 import InferEndpoint
from .protocol import dumps, error_body
from .service import Service
from .spec import ServerSpec
from .workers import Peers

JSON = "application/json"


WEDGED = "every prediction slot is held by a call running past server.timeout_s"


def create_app(spec: ServerSpec, api_key: str | None = None, debug: bool = False) -> ConduitApp:
    """The ASGI app; the model loads in a thread once the server is up. `debug` puts
    what went wrong inside into 500 bodies: for local development only."""
    admission = Admission(spec.running_slots, spec.max_queue)
    service: Service
    metrics = Metrics(spec.name, {
        "conduit_ready": lambda: int(service.ready),
        "conduit_predictions_running": lambda: admission.running,
        "conduit_predictions_queued": lambda: admission.waiting,
        "conduit_async_predictions_running": lambda: len(predictions.running),
    })
    service = Service(spec, metrics.observe_batch)
    peers = Peers.from_env()  # the other worker processes, when server.workers > 1
    key = (api_key if api_key is not None else os.environ.get(spec.api_key_env, "")).encode()
    schemas: dict[bool, bytes] = {}  # by readiness: once loaded, the model says what its data is
    endpoint = PredictEndpoint(service, admission, metrics, key, debug)
    predictions = endpoint.predictions = Predictions(service, admission, debug)

    async def prediction(request: HTTPRequest) -> Response:
        """GET /predictions/{id} and POST /predictions/{id}/cancel (predict/predictions.py)."""
        try:
            endpoint.authorize(request.headers.get("authorization", "").encode("latin-1") or None)
            id_ = request.path_params["id"]
            cancel = request.url.path.endswith("/cancel")
            answer = await (predictions.cancel(id_) if cancel else predictions.get(id_))
            if answer is None:
                raise NotFound(f"no prediction {id_!r} (unknown, or its result expired: server.async_ttl_s)")
        except ServerError as error:
            return error_response(error)
        return Response(answer, media_type=JSON)

    async def health(request: HTTPRequest) -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    async def ready(request: HTTPRequest) -> Response:
        if not service.ready:
            # A start-up that failed will not get better: the code says so (deploy and
            # `conduit test` stop waiting at once), the message never says why (the log does).
            return error_response(NotReady(service.problem, "startup_failed" if service.failed else None))
        if admission.wedged:
            return error_response(NotReady(WEDGED))
        if peers is not None and not peers.all_ready():
            return error_response(NotReady(peers.problem()))
        return Response(b'{"status":"ready"}', media_type=JSON)

    async def openapi_json(request: HTTPRequest) -> Response:
        loaded = service.flow is not None
        if loaded not in schemas:
            features = service.flow.features if service.flow is not None else None
            signature = service.flow.signature if service.flow is not None else None
            schemas[loaded] = dumps(openapi(spec, secured=bool(key), features=features, signature=signature,
                                            webhooks=predictions.webhooks.signer is not None))
        return Response(schemas[loaded], media_type=JSON)

    async def metrics_text(request: HTTPRequest) -> Response:
        return Response(metrics.render(), media_type=METRICS_TYPE)

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
        # (A worker started in place of one that died has loaded before taking connections.)
        if not (service.ready or service.failed):
            threading.Thread(target=load_quietly, args=(service, peers), name="conduit-load", daemon=True).start()
        refresher = asyncio.create_task(refresh_forever(metrics)) if metrics.shared else None
        predictions.start()  # async work: runs once the model is ready
        yield
        await predictions.close()
        if refresher is not None:
            refresher.cancel()
        if peers is not None:
            peers.leave()
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
            Route("/predictions/{id}", prediction, methods=["GET"]),
            Route("/predictions/{id}/cancel", prediction, methods=["POST"]),
            *oip_routes(service, admission, InferEndpoint(service, admission, metrics, key, debug)),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        lifespan=lifespan,
    )
    return ConduitApp(endpoint, routes, service, admission, peers)


class ConduitApp:
    """POST /predict straight to its endpoint; every other route through Starlette."""

    def __init__(self, predict: PredictEndpoint, routes: Starlette, service: Service, admission: Admission,
                 peers: Peers | None = None) -> None:
        self.predict = predict
        self.peers = peers
        self.routes = routes
        self.service = service
        self.admission = admission

    def drain(self) -> None:
        """Shutdown begins: /ready and new predictions answer 503 from now on."""
        if not self.service.draining:
            log({"event": "draining", "in_flight": self.admission.busy})
        self.service.drain()
        if self.peers is not None:
            self.peers.leave()

    @property
    def drained(self) -> bool:
        """No admitted request waits for an answer any more."""
        return self.admission.busy == 0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/predict":
            await self.predict(scope, receive, send)
        else:
            await self.routes(scope, receive, send)


def load_quietly(service: Service, peers: Peers | None = None) -> None:
    with contextlib.suppress(Exception):  # already logged; /ready reports it
        service.load()
        if peers is not None and service.ready:
            peers.ready()


async def refresh_forever(metrics: Metrics) -> None:
    """Several workers: this one's gauges into the shared files, for whichever answers a scrape."""
    while True:
        metrics.refresh()
        await asyncio.sleep(0.5)


def error_response(error: ServerError, status: int | None = None) -> Response:
    return Response(error_body(error, str(uuid.uuid4())), status or error.status, media_type=JSON)

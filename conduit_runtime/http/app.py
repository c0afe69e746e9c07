"""The ASGI app: the routes of DESIGN §3 over a Service (POST /predict: endpoint.py; the
Open Inference Protocol: v2_routes.py, infer.py). Async predictions are handed in
(async_work.py): they live a layer up, in jobs/."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as HTTPRequest
from starlette.responses import Response
from starlette.routing import Route

from ..errors import MethodNotAllowed, NotFound, ServerError
from ..log import exception_record, log
from ..model.service import Service
from ..spec import ServerSpec
from ..wire.codec import dumps
from ..wire.examples import warmup_of
from .admission import Admission
from .async_work import AsyncWork, AsyncWorkFactory
from .body import Receive
from .docs import docs_routes
from .endpoint import PredictEndpoint, Send
from .infer import InferEndpoint
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .metrics import Metrics
from .openapi import openapi
from .peers import Peers
from .readiness import liveness, readiness
from .responses import error_response, json_response
from .v2_routes import v2_routes


def create_app(spec: ServerSpec, api_key: str | None = None, debug: bool = False,
               async_work: AsyncWorkFactory | None = None) -> ConduitApp:
    """The ASGI app; the model loads in a thread once the server is up. `debug` puts
    what went wrong inside into 500 bodies: for local development only. `async_work`
    makes the async predictions (`Prefer: respond-async`, /predictions/{id})."""
    admission = Admission(spec.running_slots, spec.max_queue, spec.max_buffered_bytes, spec.max_concurrency)
    service: Service
    jobs: AsyncWork | None = None
    metrics = Metrics(spec.name, {
        "conduit_ready": lambda: int(service.ready),
        "conduit_predictions_running": lambda: admission.running,
        "conduit_predictions_queued": lambda: admission.waiting,
        "conduit_async_predictions_running": lambda: jobs.running_count() if jobs is not None else 0,
        **({"conduit_weights_fetch_seconds": lambda: service.weights.seconds if service.weights else 0,
            "conduit_weights_bytes": lambda: service.weights.bytes if service.weights else 0}
           if spec.weights is not None else {}),
    })
    service = Service(spec, metrics.observe_batch, warmup_of(spec.warmup, spec.project_dir))
    peers = Peers.from_env()  # the other worker processes, when server.workers > 1
    key = (api_key if api_key is not None else os.environ.get(spec.api_key_env, "")).encode()
    schemas: dict[bool, bytes] = {}  # by readiness: once loaded, the model says what its data is
    endpoint = PredictEndpoint(service, admission, metrics, key, debug)
    jobs = endpoint.jobs = async_work(service, admission, debug) if async_work is not None else None

    async def prediction(request: HTTPRequest) -> Response:
        """GET /predictions/{id} and POST /predictions/{id}/cancel (jobs/predictions.py)."""
        try:
            endpoint.authorize(request.headers.get("authorization", "").encode("latin-1") or None)
            id_ = request.path_params["id"]
            cancel = request.url.path.endswith("/cancel")
            answer = None if jobs is None else await (jobs.cancel(id_) if cancel else jobs.get(id_))
            if answer is None:
                raise NotFound(f"no prediction {id_!r} (unknown, or its result expired: server.async_ttl_s)")
        except ServerError as error:
            return error_response(error)
        return json_response(answer)

    async def health(request: HTTPRequest) -> Response:
        return json_response(b'{"status":"ok"}')

    async def live(request: HTTPRequest) -> Response:
        """Liveness: 503 once a wedge lasted server.wedge_restart_s, so that the kubelet restarts the pod."""
        problem = liveness(service, admission)
        return json_response(b'{"status":"live"}') if problem is None else error_response(problem)

    async def ready(request: HTTPRequest) -> Response:
        problem = readiness(service, admission, peers)
        return json_response(b'{"status":"ready"}') if problem is None else error_response(problem)

    async def openapi_json(request: HTTPRequest) -> Response:
        loaded = service.flow is not None
        if loaded not in schemas:
            features = service.flow.features if service.flow is not None else None
            signature = service.flow.signature if service.flow is not None else None
            schemas[loaded] = dumps(openapi(spec, secured=bool(key), features=features, signature=signature,
                                            webhooks=jobs is not None and jobs.signs_webhooks))
        return json_response(schemas[loaded])

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
        if jobs is not None:
            jobs.start()  # async work: runs once the model is ready
        yield
        if jobs is not None:
            await jobs.close()
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
            Route("/live", live, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/metrics", metrics_text, methods=["GET"]),
            Route("/predictions/{id}", prediction, methods=["GET"]),
            Route("/predictions/{id}/cancel", prediction, methods=["POST"]),
            *v2_routes(service, admission, peers, InferEndpoint(service, admission, metrics, key, debug)),
            *(docs_routes(spec.name) if spec.docs else []),
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

    def drain(self, admit_s: float = 0.0) -> None:
        """Shutdown begins: /ready answers 503 from now on, so that load balancers stop
        routing here, while predictions are still admitted until stop_admitting()."""
        if not self.service.draining:
            log({"event": "draining", "in_flight": self.admission.busy, "admitting_for_s": admit_s})
        self.service.draining = True  # what readiness reads; service.drain() stops admission too
        if self.peers is not None:
            self.peers.leave()

    def stop_admitting(self) -> None:
        """New predictions answer 503 from now on; those admitted finish."""
        if self.service.ready:
            log({"event": "admission_stopped", "in_flight": self.admission.busy})
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


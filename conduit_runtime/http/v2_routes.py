"""The Open Inference Protocol's routes (KServe V2 REST) beside /predict:

    GET  /v2                                        server metadata
    GET  /v2/health/live, /v2/health/ready          as /health and /ready
    GET  /v2/models/{name}[/versions/{v}]           model metadata: platform, input and output tensors
    GET  /v2/models/{name}[/versions/{v}]/ready     the model's readiness
    POST /v2/models/{name}[/versions/{v}]/infer     infer.py: the same stages, key and limits as /predict

Probes and metadata need no key, as /health, /ready and /openapi.json do; infer takes
the key /predict takes. Errors are the protocol's `{"error": "..."}`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..model.service import Service
from ..wire.codec import dumps
from ..wire.v2 import EXTENSIONS, model_metadata
from .admission import Admission
from .infer import InferEndpoint, missing_model
from .peers import Peers
from .readiness import readiness
from .responses import json_response

SERVER = "conduit"
SERVER_VERSION = "0.1.0"


def v2_routes(service: Service, admission: Admission, peers: Peers | None, infer: InferEndpoint) -> list[BaseRoute]:
    spec = service.spec
    metadata: list[bytes] = []  # made once the model is loaded

    def ready_now() -> bool:
        return readiness(service, admission, peers) is None

    async def server_metadata(request: Request) -> Response:
        return json_response(dumps({"name": SERVER, "version": SERVER_VERSION, "extensions": EXTENSIONS}))

    async def live(request: Request) -> Response:
        return json_response(b'{"live":true}')

    async def ready(request: Request) -> Response:
        is_ready = ready_now()
        return json_response(dumps({"ready": is_ready}), 200 if is_ready else 503)

    async def model(request: Request) -> Response:
        missing = missing_model(spec.name, request.path_params["name"], request.path_params.get("version"))
        if missing is not None:
            return json_response(dumps({"error": missing.message}), 404)
        if service.flow is None:
            return json_response(dumps({"error": service.problem or "the model is not loaded"}), 503)
        if not metadata:
            types = [stage.type for stage in spec.stages]
            metadata.append(dumps(model_metadata(spec.name, types, service.flow.signature)))
        return json_response(metadata[0])

    async def model_ready(request: Request) -> Response:
        missing = missing_model(spec.name, request.path_params["name"], request.path_params.get("version"))
        if missing is not None:
            return json_response(dumps({"error": missing.message}), 404)
        is_ready = ready_now()
        return json_response(dumps({"name": spec.name, "ready": is_ready}), 200 if is_ready else 503)

    routes: list[BaseRoute] = [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
    ]
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [
            Route(base, model, methods=["GET"]),
            Route(base + "/ready", model_ready, methods=["GET"]),
            Route(base + "/infer", infer, methods=["POST"]),
        ]
    return routes

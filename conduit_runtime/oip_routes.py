"""The Open Inference Protocol's routes (KServe V2 REST) beside /predict:

    GET  /v2                                        server metadata
    GET  /v2/health/live, /v2/health/ready          as /health and /ready
    GET  /v2/models/{name}[/versions/{v}]           model metadata: platform, input and output tensors
    GET  /v2/models/{name}[/versions/{v}]/ready     the model's readiness
    POST /v2/models/{name}[/versions/{v}]/infer     predict/v2.py: the same stages, key and limits as /predict

Probes and metadata need no key, as /health, /ready and /openapi.json do; infer takes
the key /predict takes. Errors are the protocol's `{"error": "..."}`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .oip import EXTENSIONS, model_metadata
from .predict.admission import Admission
from .predict.v2 import InferEndpoint, missing_model
from .protocol import dumps
from .service import Service

JSON = "application/json"
SERVER = "conduit"
SERVER_VERSION = "0.1.0"


def oip_routes(service: Service, admission: Admission, infer: InferEndpoint) -> list[BaseRoute]:
    spec = service.spec
    metadata: list[bytes] = []  # made once the model is loaded

    def ready_now() -> bool:
        return service.ready and not admission.wedged

    async def server_metadata(request: Request) -> Response:
        return Response(dumps({"name": SERVER, "version": SERVER_VERSION, "extensions": EXTENSIONS}), media_type=JSON)

    async def live(request: Request) -> Response:
        return Response(b'{"live":true}', media_type=JSON)

    async def ready(request: Request) -> Response:
        is_ready = ready_now()
        return Response(dumps({"ready": is_ready}), 200 if is_ready else 503, media_type=JSON)

    async def model(request: Request) -> Response:
        missing = missing_model(spec.name, request.path_params["name"], request.path_params.get("version"))
        if missing is not None:
            return Response(dumps({"error": missing.message}), 404, media_type=JSON)
        if service.flow is None:
            return Response(dumps({"error": service.problem or "the model is not loaded"}), 503, media_type=JSON)
        if not metadata:
            types = [stage.type for stage in spec.stages]
            metadata.append(dumps(model_metadata(spec.name, types, service.flow.signature)))
        return Response(metadata[0], media_type=JSON)

    async def model_ready(request: Request) -> Response:
        missing = missing_model(spec.name, request.path_params["name"], request.path_params.get("version"))
        if missing is not None:
            return Response(dumps({"error": missing.message}), 404, media_type=JSON)
        is_ready = ready_now()
        return Response(dumps({"name": spec.name, "ready": is_ready}), 200 if is_ready else 503, media_type=JSON)

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

"""POST /v2/models/{name}[/versions/{version}]/infer: the Open Inference Protocol's
infer, through the same stages as /predict (admit → read → parse → run → serialize
→ send), with the protocol's own body, answer and error shape (wire/v2.py).

The body is one buffer: the JSON request, then the binary tensor data when the
`Inference-Header-Content-Length` header says where the JSON ends.
"""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping
from typing import Any

from ..errors import PREDICTION_FAILED, BadRequest, ModelFailed, NotFound, ServerError, UnsupportedMediaType
from ..log import prediction_line
from ..model.flow import Flow
from ..wire.codec import dumps
from ..wire.predict import Request
from ..wire.v2 import VERSION, InferRequest, as_tensors, infer_answer, output_name, output_rows, parse_infer
from .body import Body, Receive, declared_length, media_type, read_whole
from .endpoint import PredictEndpoint, Send
from .job import Job

HEADER_LENGTH = b"inference-header-content-length"
BINARY = b"application/octet-stream"


class InferJob(Job):
    def __init__(self, flow: Flow, body: Body, run_id: str, arrived: float, header_length: int | None,
                 model_name: str, output: str, request_id: str | None = None) -> None:
        super().__init__(flow, body, run_id, arrived, request_id=request_id)
        self.header_length = header_length
        self.model_name = model_name
        self.output = output  # the name of a result that is one tensor
        self.infer: InferRequest | None = None

    def parse(self) -> Request:
        body, self.body = self.body, None
        assert body is not None and body.json is not None
        self.infer = parse_infer(body.json, self.header_length)
        self.files = self.infer.files  # closed with the job, as a form's are
        return self.infer.to_request()

    def serialize(self, output: Any) -> bytes:
        assert self.infer is not None
        try:
            tensors = as_tensors(output, self.output)
            ids = [os.urandom(16).hex() for _ in range(output_rows(tensors))]
            run_time_ms = round((time.perf_counter() - self.arrived) * 1000, 3)
            # Parameters are strings, numbers or booleans: the ids go as one comma-separated string.
            parameters = {"run_id": self.run_id, "run_time_ms": run_time_ms, "prediction_ids": ",".join(ids)}
            content, header_length = infer_answer(tensors, self.infer, self.model_name, parameters)
        except (TypeError, OSError) as exc:  # an element JSON has no spelling for
            raise ModelFailed(PREDICTION_FAILED, detail=str(exc)) from exc
        if header_length is not None:
            self.content_type = BINARY
            self.headers = ((HEADER_LENGTH, str(header_length).encode()),)
        self.log_line = prediction_line(self.run_id, ids, 200, run_time_ms, self.request_id)
        return content


class InferEndpoint(PredictEndpoint):
    """An ASGI app under the router: the model's name and version come as path parameters."""

    streams = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.output: str | None = None  # the single output's name, once the model is loaded

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        params = scope.get("path_params", {})
        missing = missing_model(self.service.spec.name, params.get("name"), params.get("version"))
        if missing is not None:
            content = dumps({"error": missing.message})
            await send({"type": "http.response.start", "status": 404, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]})
            await send({"type": "http.response.body", "body": content})
            return
        await super().__call__(scope, receive, send)

    async def read_body(self, scope: MutableMapping[str, Any], content_type: bytes | None,
                        content_length: bytes | None, receive: Receive) -> Body:
        kind = media_type(content_type)
        if kind not in ("", "application/json", "application/octet-stream") and not kind.endswith("+json"):
            raise UnsupportedMediaType(f"content type {kind!r} is not accepted; send application/json, or "
                                       "application/octet-stream with Inference-Header-Content-Length")
        for name, value in scope["headers"]:
            if name == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                raise UnsupportedMediaType("compressed request bodies are not accepted")
        return Body(json=await read_whole(receive, self.limit, declared_length(content_length, self.limit)))

    def new_job(self, scope: MutableMapping[str, Any], body: Body, run_id: str, arrived: float,
                events: bool, request_id: str) -> Job:
        header_length = None
        for name, value in scope["headers"]:
            if name == HEADER_LENGTH:
                if not value.strip().isdigit():
                    raise BadRequest("Inference-Header-Content-Length must be a number of bytes", "bad_tensor")
                header_length = int(value)
        flow = self.service.flow
        assert flow is not None
        if self.output is None:
            self.output = output_name(flow.signature)
        return InferJob(flow, body, run_id, arrived, header_length, self.service.spec.name, self.output, request_id)

    def error_body(self, error: ServerError, run_id: str) -> bytes:
        """The protocol's error: one string (the log line of the run_id has the rest)."""
        message = f"{error.message} ({error.detail})" if self.debug and error.detail else error.message
        return dumps({"error": message})


def missing_model(name: str, asked: str | None, version: str | None) -> ServerError | None:
    """404 for a model or version this server does not serve."""
    if asked != name:
        return NotFound(f"no model named {asked!r}; this server serves {name!r}")
    if version is not None and version != VERSION:
        return NotFound(f"model {name!r} has no version {version!r}; its version is {VERSION!r}")
    return None

"""The JSON answers of the routes that go through Starlette (POST /predict and infer
answer with raw ASGI messages: endpoint.py)."""

from __future__ import annotations

import uuid

from starlette.responses import Response

from ..errors import ServerError
from ..wire.predict import error_body

JSON = "application/json"


def json_response(content: bytes, status: int = 200) -> Response:
    return Response(content, status, media_type=JSON)


def error_response(error: ServerError, status: int | None = None) -> Response:
    return json_response(error_body(error, str(uuid.uuid4())), status or error.status)

"""The OpenAPI 3.1 description of the server: both request forms of /predict, with
the data described as exactly as the model allows (rows of N numbers where the
model's library says N), and every status each route can answer."""

from __future__ import annotations

from typing import Any

from .loaders import FLOAT32_MAX
from .openapi_v2 import v2_paths
from .spec import ServerSpec

ERROR = {
    "type": "object",
    "required": ["error", "run_id"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        },
        "run_id": {"type": "string"},
    },
}

ENVELOPE = {
    "type": "object",
    "required": ["result", "run_id", "run_time_ms", "prediction_ids"],
    "properties": {
        "result": {"type": "array", "description": "One entry per result row."},
        "run_id": {"type": "string", "format": "uuid"},
        "run_time_ms": {"type": "number", "minimum": 0},
        "prediction_ids": {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]{32}$"}},
    },
}

ERRORS = {
    "400": "Malformed JSON or form, or data of the wrong shape.",
    "401": "Missing or wrong API key.",
    "413": "Body over server.max_body_mb.",
    "415": "Content type other than JSON or multipart/form-data.",
    "422": "The model or a hook rejected the input.",
    "429": "Every slot busy and the queue full.",
    "500": "The model failed.",
    "503": "Not ready yet.",
    "504": "No answer within server.timeout_s.",
}


def data_schema(features: int | None) -> dict[str, Any]:
    """The request's data list: rows of `features` numbers (or one such row), or any list."""
    if features is None:
        return {"type": "array", "description": "The data list, as the model or its pre hook takes it."}
    # JSON true and false are read as 1 and 0, as numpy reads them. Numbers stay within
    # float32's range, which ONNX and torch models compute in, so that none becomes infinite.
    number = {"type": ["number", "boolean"], "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    row = {"type": "array", "items": number, "minItems": features, "maxItems": features}
    return {"anyOf": [
        {"type": "array", "items": row, "minItems": 1, "description": f"Rows of {features} numbers."},
        {**row, "description": f"One row of {features} numbers."},
    ]}


def openapi(spec: ServerSpec, secured: bool, features: int | None = None,
            signature: dict[str, Any] | None = None) -> dict[str, Any]:
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    data = data_schema(features)
    form_fields: dict[str, Any] = {
        "data": {**data, "description": "The data list, as a JSON string (e.g. curl -F data='[[...]]'); "
                                        "without it the data is []."},
        "parameters": {"type": ["object", "null"], "description": "A JSON object, as a JSON string (optional)."},
    }
    if features is None:  # a model that reads rows of numbers takes no files
        form_fields["files"] = {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": "File parts in order; any field name (files, file0, file1 …).",
        }
    predict: dict[str, Any] = {
        "summary": f"Run {spec.name}",
        "operationId": "predict",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {**data, "description": "The data list, e.g. [[5.1, 3.5, 1.4, 0.2]]."}
                            if features is None else data,
                            {
                                "type": "object",
                                "required": ["data"],
                                "properties": {"data": data, "parameters": {"type": ["object", "null"]}},
                            },
                        ]
                    }
                },
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": form_fields,
                               **({"required": ["data"]} if features is not None else {})},
                    # Each field is a JSON document in its part.
                    "encoding": {"data": {"contentType": "application/json"},
                                 "parameters": {"contentType": "application/json"}},
                },
            },
        },
        "responses": {
            "200": {"description": "Prediction", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}},
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "description": "With `Accept: text/event-stream`: Server-Sent Events, one `output` per chunk of a "
                                   "chunked (generator) result, then `completed` with the envelope, or `error` with "
                                   "the error body.",
                },
            }},
            **{code: {"description": text, "content": error_ref} for code, text in ERRORS.items()},
        },
    }
    if secured:
        predict["security"] = [{"apiKey": []}]

    def probe(summary: str) -> dict[str, Any]:
        return {"get": {"summary": summary, "responses": {"200": {"description": "OK"}, "503": {"description": "Not ready", "content": error_ref}}}}

    v2 = v2_paths(spec, secured, features, signature)
    return {
        "openapi": "3.1.0",
        "info": {"title": spec.name, "version": "1.0.0", "description": "Served by Conduit."},
        "paths": {
            "/predict": {"post": predict},
            "/health": probe("Liveness: 200 while the process serves."),
            "/ready": probe("Readiness: 200 once the model is loaded and warmed up."),
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            **v2["paths"],
        },
        "components": {
            "schemas": {"Envelope": ENVELOPE, "Error": ERROR, **v2["schemas"]},
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "Authorization",
                           "description": "The key, or 'Bearer <key>'."}
            },
        },
    }

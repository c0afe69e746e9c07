"""The OpenAPI 3.1 description of the server: both request forms of /predict."""

from __future__ import annotations

from typing import Any

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


def openapi(spec: ServerSpec, secured: bool) -> dict[str, Any]:
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    predict: dict[str, Any] = {
        "summary": f"Run {spec.name}",
        "operationId": "predict",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"type": "array", "description": "The data list, e.g. [[5.1, 3.5, 1.4, 0.2]]."},
                            {
                                "type": "object",
                                "required": ["data"],
                                "properties": {"data": {"type": "array"}, "parameters": {"type": "object"}},
                            },
                        ]
                    }
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "data": {"type": "string", "description": "The data list as a JSON string."},
                            "parameters": {"type": "string", "description": "A JSON object (optional)."},
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": "File parts in order; any field name (files, file0, file1 …).",
                            },
                        },
                    }
                },
            },
        },
        "responses": {
            "200": {"description": "Prediction", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}},
            **{code: {"description": text, "content": error_ref} for code, text in ERRORS.items()},
        },
    }
    if secured:
        predict["security"] = [{"apiKey": []}]

    def probe(summary: str) -> dict[str, Any]:
        return {"get": {"summary": summary, "responses": {"200": {"description": "OK"}, "503": {"description": "Not ready", "content": error_ref}}}}

    return {
        "openapi": "3.1.0",
        "info": {"title": spec.name, "version": "1.0.0", "description": "Served by Conduit."},
        "paths": {
            "/predict": {"post": predict},
            "/health": probe("Liveness: 200 while the process serves."),
            "/ready": probe("Readiness: 200 once the model is loaded and warmed up."),
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        },
        "components": {
            "schemas": {"Envelope": ENVELOPE, "Error": ERROR},
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "Authorization",
                           "description": "The key, or 'Bearer <key>'."}
            },
        },
    }

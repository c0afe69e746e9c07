"""The OpenAPI 3.1 description of the server: both request forms of /predict, with
the data described as exactly as the model allows (rows of N numbers where the
model's library says N), and every status each route can answer."""

from __future__ import annotations

from typing import Any

from ..model.loaders.tabular import FLOAT32_MAX
from ..spec import ServerSpec
from .openapi_v2 import v2_paths

ERROR: dict[str, Any] = {
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

ENVELOPE: dict[str, Any] = {
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
    "429": "Every slot busy and the queue full (for an async request: server.async_max_queue reached).",
    "500": "The model failed.",
    "503": "Not ready yet.",
    "504": "No answer within server.timeout_s.",
}


ACCEPTED: dict[str, Any] = {
    "type": "object",
    "required": ["id", "status", "run_id", "urls"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "status": {"const": "starting"},
        "run_id": {"type": "string", "format": "uuid"},
        "urls": {"type": "object", "required": ["get", "cancel"],
                 "properties": {"get": {"type": "string"}, "cancel": {"type": "string"}}},
    },
}

PREDICTION = {
    "type": "object",
    "required": ["id", "status", "created_at", "run_id", "urls"],
    "description": "An async prediction; once it ended, also the synchronous answer's keys: the envelope "
                   "(result, run_time_ms, prediction_ids) when it succeeded, `error` when it failed.",
    "properties": {
        **ACCEPTED["properties"],
        "status": {"enum": ["starting", "processing", "succeeded", "failed", "canceled"]},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": ["string", "null"], "format": "date-time"},
        "completed_at": {"type": ["string", "null"], "format": "date-time"},
        **{key: value for key, value in ENVELOPE["properties"].items() if key != "run_id"},
        "error": ERROR["properties"]["error"],
    },
}

WEBHOOK_FIELDS: dict[str, Any] = {
    "webhook": {"type": "string", "format": "uri", "description": (
        "POST the prediction object here on each event, signed per Standard Webhooks (webhook-id, "
        "webhook-timestamp, webhook-signature; secret named by server.webhook_secret_env). Makes the request "
        "async (202). `webhook_endpoint` is read the same way.")},
    "webhook_events_filter": {"type": "array", "items": {"enum": ["start", "output", "completed"]},
                              "description": "Events to send (default [\"completed\"])."},
}


def async_paths(error_ref: dict[str, Any], secured: bool) -> dict[str, Any]:
    """GET /predictions/{id} and POST /predictions/{id}/cancel."""
    answer = {"200": {"description": "The prediction", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Prediction"}}}},
        "401": {"description": ERRORS["401"], "content": error_ref},
        "404": {"description": "No such prediction (or its result expired: server.async_ttl_s).", "content": error_ref}}
    parameter = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
    security: dict[str, Any] = {"security": [{"apiKey": []}]} if secured else {}
    return {
        "/predictions/{id}": {"get": {"summary": "An async prediction's status, and its answer once it ended",
                                      "operationId": "getPrediction", "parameters": parameter,
                                      "responses": answer, **security}},
        "/predictions/{id}/cancel": {"post": {"summary": "Cancel an async prediction (an ended one is unchanged)",
                                              "operationId": "cancelPrediction", "parameters": parameter,
                                              "responses": answer, **security}},
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
            signature: dict[str, Any] | None = None, webhooks: bool = False) -> dict[str, Any]:
    """`webhooks`: the server has a webhook secret, so the webhook fields are taken (else refused: not shown)."""
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    data = data_schema(features)
    form_fields: dict[str, Any] = {
        "data": {**data, "description": "The data list, as a JSON string (e.g. curl -F data='[[...]]'); "
                                        "without it the data is []."},
        "parameters": {"type": ["object", "null"], "description": "A JSON object, as a JSON string (optional)."},
    }
    if webhooks:
        form_fields["webhook"] = WEBHOOK_FIELDS["webhook"]
        form_fields["webhook_events_filter"] = {
            "type": "string", "description": "A JSON list or comma-separated: start, output, completed (default completed)."}
    if features is None:  # a model that reads rows of numbers takes no files
        form_fields["files"] = {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": "File parts in order; any field name (files, file0, file1 …).",
        }
    predict: dict[str, Any] = {
        "summary": f"Run {spec.name}",
        "operationId": "predict",
        "parameters": [{"name": "Prefer", "in": "header", "required": False, "schema": {"type": "string"},
                        "description": "`respond-async`: answer 202 at once; GET /predictions/{id} for the answer."}],
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
                                "properties": {"data": data, "parameters": {"type": ["object", "null"]},
                                               **(WEBHOOK_FIELDS if webhooks else {})},
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
            "202": {"description": "Accepted as an async prediction (Prefer: respond-async, or a webhook named)",
                    "headers": {"Location": {"schema": {"type": "string"}},
                                "Preference-Applied": {"schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
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
            "/health": probe("200 while the process serves (a start-up probe)."),
            "/live": probe("Liveness: 200 unless /ready has said `wedged` for server.wedge_restart_s (then 503: restart)."),
            "/ready": probe("Readiness: 200 once the model is loaded and warmed up, and not wedged (503 `wedged`)."),
            **async_paths(error_ref, secured),
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            **v2["paths"],
        },
        "components": {
            "schemas": {"Envelope": ENVELOPE, "Error": ERROR, "Accepted": ACCEPTED, "Prediction": PREDICTION,
                        **v2["schemas"]},
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "Authorization",
                           "description": "The key, or 'Bearer <key>'."}
            },
        },
    }

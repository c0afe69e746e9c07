"""The Open Inference Protocol's routes in /openapi.json (v2_routes.py, infer.py).

The model's name and version are the only ones the server answers for. Where the model's
library says how many numbers a row holds, an infer request is described as exactly as the
server takes it (one input of [1, N] numbers, flat or nested), so that a client generated
from the description, or schemathesis, sends what the model takes; the server itself also
takes [k, N] batches and every datatype of the protocol.
"""

from __future__ import annotations

from typing import Any

from ..model.loaders.signatures import DATATYPES
from ..model.loaders.tabular import FLOAT32_MAX
from ..spec import ServerSpec
from ..wire.v2 import VERSION, output_name

V2_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
TENSOR_META = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string", "enum": list(DATATYPES)},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}},
    },
}
PARAMETERS = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
OUTPUT = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string", "enum": list(DATATYPES)},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "parameters": PARAMETERS,
        "data": {"type": "array", "description": "Row-major, flat; absent when sent as binary data."},
    },
}
INFER_RESPONSE = {
    "type": "object",
    "required": ["model_name", "outputs"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string", "description": "The request's id, when it had one."},
        "parameters": {
            "type": "object",
            "description": "run_id (as /predict's, and the log line's), run_time_ms, and prediction_ids: one "
                           "32-hex id per row of the first output, comma-separated.",
            "properties": {"run_id": {"type": "string", "format": "uuid"}, "run_time_ms": {"type": "number"},
                           "prediction_ids": {"type": "string", "pattern": "^([0-9a-f]{32}(,[0-9a-f]{32})*)?$"}},
        },
        "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/V2Output"}},
    },
}
ERRORS = {
    "400": "Malformed request, or a tensor whose data does not match its shape or datatype.",
    "401": "Missing or wrong API key.",
    "404": "No such model or version.",
    "413": "Body over server.max_body_mb.",
    "415": "Content type other than JSON, or octet-stream with Inference-Header-Content-Length.",
    "422": "The model or a hook rejected the input.",
    "429": "Every slot busy and the queue full.",
    "500": "The model failed.",
    "503": "Not ready yet.",
    "504": "No answer within server.timeout_s.",
}


def input_schema(features: int | None) -> dict[str, Any]:
    """An infer request's input tensor. The server takes any shape whose data fills it; what
    JSON Schema can tie together is described: one element of each datatype (shape [1]), or,
    where the model's library says how many numbers a row holds, one row of them."""
    if features is None:
        element = {
            "BOOL": {"type": "boolean"},
            "INT": {"type": "integer", "minimum": 0, "maximum": 127},  # fits every integer datatype
            "FP": {"type": "number", "minimum": -65504, "maximum": 65504},  # fits FP16
            "BYTES": {"type": "string"},
        }
        kinds = {"BOOL": ["BOOL"], "INT": [t for t in DATATYPES if "INT" in t],
                 "FP": ["FP16", "FP32", "FP64"], "BYTES": ["BYTES"]}
        return {"anyOf": [{
            "type": "object",
            "required": ["name", "shape", "datatype", "data"],
            "description": "A tensor of any shape whose data fills it (flat, row-major, or nested as the "
                           "shape); its elements as the datatype says. Described here for shape [1].",
            "properties": {
                "name": {"type": "string"},
                "shape": {"type": "array", "prefixItems": [{"const": 1}], "minItems": 1, "maxItems": 1},
                "datatype": {"type": "string", "enum": kinds[kind]},
                "parameters": {"type": "object", "description": "binary_data_size: the tensor's bytes after the "
                                                                "JSON (then no data); content_type of BYTES elements."},
                "data": {"type": "array", "items": element[kind], "minItems": 1, "maxItems": 1},
            },
        } for kind in ("BOOL", "INT", "FP", "BYTES")]}
    number = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    row = {"type": "array", "items": number, "minItems": features, "maxItems": features}
    return {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "description": f"Rows of {features} numbers: shape [k, {features}] (described here for k = 1).",
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "prefixItems": [{"const": 1}, {"const": features}],
                      "minItems": 2, "maxItems": 2},
            # FP64 (and the integer types) are taken too; FP32 is what bounds the numbers as described
            "datatype": {"type": "string", "enum": ["FP32"]},
            "parameters": {"type": "object"},
            "data": {"anyOf": [row, {"type": "array", "items": row, "minItems": 1, "maxItems": 1}]},
        },
    }


def v2_paths(spec: ServerSpec, secured: bool, features: int | None,
             signature: dict[str, Any] | None) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/V2Error"}}}
    # The outputs the model's library names, else the one a single result is answered as.
    outputs = [str(o["name"]) for o in (signature or {}).get("outputs", [])] or [output_name(signature)]
    wanted: dict[str, Any] = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "enum": outputs},
            "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}},
        },
    }
    infer_request = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object", "description": "Handed to the model (hf pipelines: keyword arguments); "
                                                            "binary_data_output: every output as binary data."},
            # Several inputs, each named differently, become a dict by name: JSON Schema cannot say
            # "names differ", so one is described.
            "inputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": input_schema(features)},
            "outputs": {"type": "array", "items": wanted},
        },
    }
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "enum": [spec.name]}}
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string", "enum": [VERSION]}}

    def ready_answer(schema: dict[str, Any]) -> dict[str, Any]:
        body = {"application/json": {"schema": schema}}
        return {"200": {"description": "Ready", "content": body}, "503": {"description": "Not ready", "content": body}}

    def model_ops(params: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        infer: dict[str, Any] = {
            "summary": f"Open Inference Protocol: run {spec.name}",
            "parameters": params,
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/V2InferRequest"}},
            }},
            "responses": {
                "200": {"description": "Outputs", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/V2InferResponse"}},
                    "application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"},
                        "description": "Binary tensor data: the JSON answer (its length in the "
                                       "Inference-Header-Content-Length header), then the outputs' bytes.",
                    },
                }},
                **{code: {"description": text, "content": error} for code, text in ERRORS.items()},
            },
        }
        if secured:
            infer["security"] = [{"apiKey": []}]
        ready_model = {"type": "object", "required": ["name", "ready"],
                       "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}}}
        return {
            "metadata": {"get": {"summary": "Open Inference Protocol: model metadata", "parameters": params,
                                 "responses": {"200": {"description": "The model's tensors", "content": {
                                     "application/json": {"schema": {"$ref": "#/components/schemas/V2ModelMetadata"}}}},
                                     "404": {"description": "No such model or version", "content": error},
                                     "503": {"description": "Not loaded yet", "content": error}}}},
            "ready": {"get": {"summary": "Open Inference Protocol: model readiness", "parameters": params,
                              "responses": {**ready_answer(ready_model),
                                            "404": {"description": "No such model or version", "content": error}}}},
            "infer": {"post": infer},
        }

    paths: dict[str, Any] = {
        "/v2": {"get": {"summary": "Open Inference Protocol: server metadata", "responses": {"200": {
            "description": "The server", "content": {"application/json": {"schema": {
                "type": "object", "required": ["name", "version", "extensions"],
                "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                               "extensions": {"type": "array", "items": {"type": "string"}}}}}}}}}},
        "/v2/health/live": {"get": {"summary": "Open Inference Protocol: liveness", "responses": {"200": {
            "description": "Live", "content": {"application/json": {"schema": {
                "type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}}}}}}}},
        "/v2/health/ready": {"get": {"summary": "Open Inference Protocol: readiness", "responses": ready_answer({
            "type": "object", "required": ["ready"], "properties": {"ready": {"type": "boolean"}}})}},
    }
    for base, params in (("/v2/models/{name}", [name]), ("/v2/models/{name}/versions/{version}", [name, version])):
        ops = model_ops(params)
        paths[base] = ops["metadata"]
        paths[base + "/ready"] = ops["ready"]
        paths[base + "/infer"] = ops["infer"]
    return {
        "paths": paths,
        "schemas": {
            "V2Error": V2_ERROR,
            "V2InferRequest": infer_request,
            "V2InferResponse": INFER_RESPONSE,
            "V2Output": OUTPUT,
            "V2ModelMetadata": {
                "type": "object",
                "required": ["name", "platform", "inputs", "outputs"],
                "properties": {
                    "name": {"type": "string"},
                    "versions": {"type": "array", "items": {"type": "string"}},
                    "platform": {"type": "string"},
                    "inputs": {"type": "array", "items": TENSOR_META},
                    "outputs": {"type": "array", "items": TENSOR_META},
                },
            },
        },
    }

"""The OpenAPI 3 document of the HTTP front end (served at /v2/openapi.json): the KServe v2 REST
endpoints as hwfit implements them, precise enough for a schema fuzzer to check responses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hwfit import __version__
from hwfit.serve.api import DATATYPES, TIERS, ModelInfo

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str, retry_after: bool = False) -> dict[str, Any]:
    response = _json(_ref("Error"), description)
    if retry_after:
        response["headers"] = {
            "Retry-After": {"description": "seconds after which a retry may succeed", "schema": {"type": "string"}}
        }
    return response


COMMON_ERRORS = {
    "401": _error("a bearer token is required (when the server has one) and was missing or wrong"),
    "default": _error('any other failure, as {"error": message}'),
}
MODEL_ERRORS = {**COMMON_ERRORS, "404": _error("no model of that name (or version)")}

NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
HEADER_LENGTH = {
    "name": "Inference-Header-Content-Length",
    "in": "header",
    "required": False,
    "description": "binary tensor extension: how many leading bytes of the body are JSON; "
    "the rest is the binary data of the inputs that give parameters.binary_data_size",
    "schema": {"type": "integer", "minimum": 1},
}


def _health(what: str) -> dict[str, Any]:
    key = "live" if what == "live" else "ready"
    schema = {"type": "object", "required": [key], "properties": {key: {"type": "boolean"}}}
    return {
        "get": {
            "summary": f"server {what}ness (no token needed)",
            "responses": {
                "200": _json(schema, f"the server is {what}"),
                "503": _json(schema, f"the server is not {what} (e.g. draining)"),
                "default": _error("failure"),
            },
        }
    }


def _path_parameters(served: Served, with_version: bool) -> list[dict[str, Any]]:
    """The model (and version) in the path; the names this server serves are listed as the only
    valid values (any other name is answered 404)."""
    name = {**NAME, "schema": {"type": "string", "enum": list(served.names)}} if served.names else NAME
    version = {**VERSION, "schema": {"type": "string", "enum": list(served.versions)}} if served.versions else VERSION
    return [name, version] if with_version else [name]


def _model_get(summary: str, schema_name: str, with_version: bool, served: Served) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": _path_parameters(served, with_version),
            "responses": {"200": _json(_ref(schema_name), summary), **MODEL_ERRORS},
        }
    }


def _model_ready(with_version: bool, served: Served) -> dict[str, Any]:
    schema = {"type": "object", "required": ["ready"], "properties": {"ready": {"type": "boolean"}}}
    return {
        "get": {
            "summary": "model readiness",
            "parameters": _path_parameters(served, with_version),
            "responses": {
                "200": _json(schema, "ready"),
                "503": _json(schema, "not ready"),
                **MODEL_ERRORS,
            },
        }
    }


def _with_example(media: dict[str, Any], served: Served) -> dict[str, Any]:
    return {**media, "example": served.infer_example} if served.infer_example else media


def _infer(with_version: bool, served: Served) -> dict[str, Any]:
    return {
        "post": {
            "summary": "run the model on the request's inputs",
            "parameters": _path_parameters(served, with_version) + [HEADER_LENGTH],
            "requestBody": {
                "required": True,
                "content": {JSON: _with_example({"schema": _ref("InferRequest")}, served)},
            },
            "responses": {
                "200": {
                    "description": "the outputs; with binary outputs the body is the JSON header, then "
                    "their bytes in output order, and the Inference-Header-Content-Length header is set",
                    "content": {
                        JSON: {"schema": _ref("InferResponse")},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "400": _error("malformed request, or inputs that do not fit the model"),
                "413": _error("the body is larger than the server accepts"),
                "429": _error("refused at admission (queues full, or no pool can meet the deadline)", True),
                "503": _error("no pool can serve now, or the server is draining", True),
                "504": _error("the request's deadline passed before it could be answered"),
                **MODEL_ERRORS,
            },
        }
    }


def _schemas() -> dict[str, Any]:
    datatype = {"type": "string", "enum": list(DATATYPES)}
    shape = {"type": "array", "items": {"type": "integer", "minimum": 0}}
    tensor_meta = {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": datatype,
            "shape": {"type": "array", "items": {"type": "integer"}},
        },
    }
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "ServerMetadata": {
            "type": "object",
            "required": ["name", "version", "extensions"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "extensions": {"type": "array", "items": {"type": "string"}},
            },
        },
        "TensorMetadata": tensor_meta,
        "ModelMetadata": {
            "type": "object",
            "required": ["name", "versions", "platform", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": _ref("TensorMetadata")},
                "outputs": {"type": "array", "items": _ref("TensorMetadata")},
            },
        },
        "ModelConfig": {
            "type": "object",
            "description": "the subset of Triton's model configuration that clients read",
            "required": ["name", "max_batch_size", "input", "output"],
            "properties": {
                "name": {"type": "string"},
                "platform": {"type": "string"},
                "max_batch_size": {"type": "integer", "minimum": 0},
                "input": {"type": "array", "items": {"type": "object"}},
                "output": {"type": "array", "items": {"type": "object"}},
            },
        },
        "RequestParameters": {
            "type": "object",
            "description": "hwfit reads these; others are passed over",
            "properties": {
                "timeout_ms": {
                    "type": "number",
                    "minimum": 0,
                    "exclusiveMinimum": True,
                    "description": "deadline from arrival",
                },
                "timeout": {"type": "integer", "minimum": 1, "description": "Triton's deadline, microseconds"},
                "priority": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Triton's priority level: 1 is the highest (shed last), larger numbers "
                    "are lower, 0 = the default level",
                },
                "tier": {"type": "string", "enum": list(TIERS)},
                "binary_data_output": {"type": "boolean", "description": "every output as binary data"},
            },
        },
        "InferInput": {
            "type": "object",
            "required": ["name", "datatype", "shape"],
            "properties": {
                "name": {"type": "string"},
                "datatype": datatype,
                "shape": shape,
                "data": {"type": "array", "description": "row-major values, flat or nested"},
                "parameters": {
                    "type": "object",
                    "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
                },
            },
        },
        "RequestedOutput": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}},
            },
        },
        "InferRequest": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "parameters": _ref("RequestParameters"),
                "inputs": {"type": "array", "minItems": 1, "items": _ref("InferInput")},
                "outputs": {"type": "array", "items": _ref("RequestedOutput")},
            },
        },
        "InferOutput": {
            "type": "object",
            "required": ["name", "datatype", "shape"],
            "properties": {
                "name": {"type": "string"},
                "datatype": datatype,
                "shape": shape,
                "data": {"type": "array"},
                "parameters": {"type": "object"},
            },
        },
        "InferResponse": {
            "type": "object",
            "required": ["model_name", "model_version", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "parameters": {"type": "object"},
                "outputs": {"type": "array", "items": _ref("InferOutput")},
            },
        },
    }


@dataclass(frozen=True)
class Served:
    """The model names and versions a server serves (empty: not listed in the document)."""

    names: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    infer_example: dict[str, Any] | None = None  # a valid infer body for the first model


def example_request(info: ModelInfo) -> dict[str, Any]:
    """A valid JSON infer body for `info`: every input at size 1 on dynamic dims, zeros (or "")."""
    inputs = []
    for tensor in info.inputs:
        shape = [1 if dim == -1 else dim for dim in tensor.shape]
        value: Any = "" if tensor.datatype == "BYTES" else (False if tensor.datatype == "BOOL" else 0)
        inputs.append(
            {"name": tensor.name, "datatype": tensor.datatype, "shape": shape, "data": [value] * math.prod(shape)}
        )
    return {"inputs": inputs}


def openapi_document(served: Served = Served()) -> dict[str, Any]:
    """The OpenAPI 3.0 document of every HTTP endpoint, listing the models `served`."""
    model = "/v2/models/{name}"
    version = "/v2/models/{name}/versions/{version}"
    text = {"description": "Prometheus text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "hwfit serve (KServe v2 / Open Inference Protocol)",
            "version": __version__,
            "description": "Health, metadata and inference over HTTP; the same service is on gRPC "
            "(inference.GRPCInferenceService). With a token, send 'Authorization: Bearer <token>'.",
        },
        "paths": {
            "/v2/health/live": _health("live"),
            "/v2/health/ready": _health("ready"),
            "/v2": {
                "get": {
                    "summary": "server metadata",
                    "responses": {"200": _json(_ref("ServerMetadata"), "name, version, extensions"), **COMMON_ERRORS},
                }
            },
            "/v2/repository/index": {
                "post": {
                    "summary": "the models served (Triton's repository index, read-only; any request body is ignored)",
                    "responses": {
                        "200": _json(
                            {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "name": {"type": "string"},
                                        "version": {"type": "string"},
                                        "state": {"type": "string", "enum": ["READY", "UNAVAILABLE"]},
                                    },
                                    "required": ["name", "version", "state"],
                                },
                            },
                            "name, version and state of each model",
                        ),
                        **COMMON_ERRORS,
                    },
                }
            },
            model: _model_get("model metadata", "ModelMetadata", False, served),
            version: _model_get("model metadata", "ModelMetadata", True, served),
            model + "/ready": _model_ready(False, served),
            version + "/ready": _model_ready(True, served),
            model + "/config": _model_get("model configuration (Triton's subset)", "ModelConfig", False, served),
            version + "/config": _model_get("model configuration (Triton's subset)", "ModelConfig", True, served),
            model + "/infer": _infer(False, served),
            version + "/infer": _infer(True, served),
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": text, **COMMON_ERRORS}}},
            "/v2/openapi.json": {
                "get": {
                    "summary": "this document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.0"), **COMMON_ERRORS},
                }
            },
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }

"""Serving: dynamic batchers, predicted-latency routing, worker pools, the KServe v2 HTTP and gRPC
front ends, and Prometheus metrics. May import telemetry, models, backends and plan."""

from hwfit.serve.api import (
    DATATYPES,
    BadRequest,
    DeadlineExceeded,
    Dispatcher,
    InferRequest,
    InferResponse,
    InternalError,
    ModelInfo,
    ModelNotFound,
    PayloadTooLarge,
    Rejected,
    RequestOptions,
    ServeError,
    TensorInfo,
    Timings,
    Unauthenticated,
    Unavailable,
    datatype_of,
)

__all__ = [
    "DATATYPES",
    "BadRequest",
    "DeadlineExceeded",
    "Dispatcher",
    "InferRequest",
    "InferResponse",
    "InternalError",
    "ModelInfo",
    "ModelNotFound",
    "PayloadTooLarge",
    "Rejected",
    "RequestOptions",
    "ServeError",
    "TensorInfo",
    "Timings",
    "Unauthenticated",
    "Unavailable",
    "datatype_of",
]

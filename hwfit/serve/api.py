"""The seam between the front ends (HTTP, gRPC) and the scheduler (batchers, router, workers).

A front end decodes a request into an `InferRequest`, hands it to a `Dispatcher`, and encodes the
`InferResponse` or the `ServeError` it gets back. Each `ServeError` carries the HTTP status and the
gRPC status code that fit it, so both front ends answer the same failure the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from hwfit.core import HwfitError

TIERS = ("full", "degraded")

# Priority levels as Triton numbers them (`priority_levels`, `default_priority_level`): 1 is the
# highest, larger numbers are lower, and 0 (what tritonclient sends by default) or a number past
# the lowest level means the default level. A client written for Triton keeps its meaning here.
PRIORITY_LEVELS = 10
DEFAULT_PRIORITY_LEVEL = 5


def effective_priority_level(requested: int) -> int:
    """The level a request is served at: Triton's rule (0 or past the lowest level -> the default)."""
    if requested <= 0 or requested > PRIORITY_LEVELS:
        return DEFAULT_PRIORITY_LEVEL
    return requested


def importance_of(level: int) -> int:
    """A level as a number that grows with importance (level 1 -> PRIORITY_LEVELS), for ordering."""
    return PRIORITY_LEVELS + 1 - effective_priority_level(level)


def level_of(importance: int) -> int:
    """The priority level an importance came from (the inverse of `importance_of`)."""
    return PRIORITY_LEVELS + 1 - importance


# KServe v2 / Triton datatype names <-> numpy dtypes
DATATYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
NUMPY_TO_DATATYPE = {numpy_name: datatype for datatype, numpy_name in DATATYPES.items()}


def datatype_of(dtype: np.dtype | str) -> str:
    """The KServe datatype of a numpy dtype (float32 -> FP32)."""
    name = np.dtype(dtype).name
    if name not in NUMPY_TO_DATATYPE:
        raise HwfitError(f"numpy dtype {name} has no KServe v2 datatype; supported: {', '.join(NUMPY_TO_DATATYPE)}")
    return NUMPY_TO_DATATYPE[name]


# --- errors ---------------------------------------------------------------------------------


class ServeError(HwfitError):
    """A request the server answers with an error: HTTP status, gRPC code, and (if any) Retry-After."""

    http_status = 500
    grpc_code = "INTERNAL"

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BadRequest(ServeError):
    """Malformed request, or inputs that do not match the model (name, datatype, shape, values)."""

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"


class Unauthenticated(ServeError):
    http_status = 401
    grpc_code = "UNAUTHENTICATED"


class ModelNotFound(ServeError):
    http_status = 404
    grpc_code = "NOT_FOUND"


class PayloadTooLarge(ServeError):
    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class Rejected(ServeError):
    """Refused at admission: no pool can meet the deadline, or the queues are full (shed)."""

    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"


class DeadlineExceeded(ServeError):
    """Accepted, but its deadline passed before it could be answered (should be rare: admission predicts)."""

    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"


class Unavailable(ServeError):
    """No pool can serve now (every device down, or the server is draining)."""

    http_status = 503
    grpc_code = "UNAVAILABLE"


class InternalError(ServeError):
    http_status = 500
    grpc_code = "INTERNAL"


# --- requests and responses -------------------------------------------------------------------


@dataclass(frozen=True)
class TensorInfo:
    """A tensor in model metadata: KServe datatype and shape (-1 for a dynamic dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    max_batch_size: int


@dataclass(frozen=True)
class RequestOptions:
    """Per-request options from the protocol's `parameters`."""

    timeout_ms: float | None = None  # deadline, from when the request arrived
    priority: int = 0  # Triton's level: 1 is the highest, larger is lower, 0 = the default level
    tier: Literal["full", "degraded"] = "full"  # degraded: may be served by the plan's degraded tier

    @property
    def priority_level(self) -> int:
        return effective_priority_level(self.priority)

    @property
    def importance(self) -> int:
        """Larger is more important: the scheduler orders and sheds by it (the lowest is shed first)."""
        return importance_of(self.priority)


@dataclass
class InferRequest:
    model_name: str
    inputs: dict[str, np.ndarray]
    model_version: str | None = None
    id: str | None = None
    requested_outputs: list[str] | None = None  # None: all outputs
    binary_outputs: set[str] = field(default_factory=set)  # HTTP: which outputs to send as binary
    options: RequestOptions = field(default_factory=RequestOptions)
    arrived: float = field(default_factory=time.perf_counter)

    @property
    def deadline(self) -> float | None:
        """perf_counter time by which it must be answered, or None."""
        if self.options.timeout_ms is None:
            return None
        return self.arrived + self.options.timeout_ms / 1000.0


@dataclass
class Timings:
    queue_ms: float = 0.0  # waiting for a batch slot
    batch_ms: float = 0.0  # batch formation (waiting for the batch to fill)
    compute_ms: float = 0.0


@dataclass
class InferResponse:
    model_name: str
    model_version: str
    outputs: dict[str, np.ndarray]
    id: str | None = None
    pool: str | None = None
    timings: Timings = field(default_factory=Timings)


class Dispatcher(Protocol):
    """What a front end needs from the scheduler."""

    def models(self) -> list[ModelInfo]: ...

    def model_info(self, name: str, version: str | None = None) -> ModelInfo:
        """Raises ModelNotFound."""
        ...

    def live(self) -> bool: ...

    def ready(self, name: str | None = None, version: str | None = None) -> bool: ...

    async def infer(self, request: InferRequest) -> InferResponse:
        """Raises a ServeError subclass for every refusal or failure."""
        ...

    def metrics_text(self) -> str:
        """Prometheus text exposition format."""
        ...

    async def start(self) -> None: ...

    async def stop(self, drain_s: float) -> None:
        """Stop accepting, answer what was accepted (up to drain_s), release workers."""
        ...

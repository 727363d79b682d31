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

# The scheduler, imported on first use: a front end or a worker process needs none of it.
_SCHEDULER_EXPORTS = {
    "PlanDispatcher": "hwfit.serve.dispatcher",
    "DispatcherConfig": "hwfit.serve.dispatcher",
    "PoolConfig": "hwfit.serve.pools",
    "HealthPolicy": "hwfit.serve.pools",
    "WatchdogPolicy": "hwfit.serve.workers",
    "InProcess": "hwfit.serve.inprocess",
    "ResultCache": "hwfit.serve.cache",
    "ServeMetrics": "hwfit.serve.metrics",
    "EmulatedPool": "hwfit.serve.emulation",
    "emulated_plan": "hwfit.serve.emulation",
    "default_plan": "hwfit.serve.default_plan",
}
__all__ += list(_SCHEDULER_EXPORTS)


def __getattr__(name: str):
    if name in _SCHEDULER_EXPORTS:
        import importlib

        return getattr(importlib.import_module(_SCHEDULER_EXPORTS[name]), name)
    raise AttributeError(f"module 'hwfit.serve' has no attribute {name!r}")


# The front ends (HTTP, gRPC, the server around them) and the direct dispatcher, also imported on
# first use: a worker process needs none of aiohttp or grpc.
_FRONT_END_EXPORTS = {
    "ServerConfig": "hwfit.serve.server",
    "ServerAddresses": "hwfit.serve.server",
    "RunningServer": "hwfit.serve.server",
    "Server": "hwfit.serve.server",
    "run_server": "hwfit.serve.server",
    "start_in_thread": "hwfit.serve.server",
    "DirectDispatcher": "hwfit.serve.direct",
    "validate_request": "hwfit.serve.validate",
}
__all__ += list(_FRONT_END_EXPORTS)
_scheduler_getattr = __getattr__


def __getattr__(name: str):  # noqa: F811 - extends the scheduler's lazy exports above
    if name in _FRONT_END_EXPORTS:
        import importlib

        return getattr(importlib.import_module(_FRONT_END_EXPORTS[name]), name)
    return _scheduler_getattr(name)

"""Serving, in two rooms that share only `api` (the request, response and error nouns and the
`Dispatcher` protocol): `frontend/` speaks KServe v2 over HTTP and gRPC and holds no scheduling;
`scheduler/` batches, routes, runs worker pools and keeps the metrics. May import core, telemetry,
models, backends, simulate and plan."""

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

# The two rooms' public names, each imported on first use (PEP 562): a worker process imports
# neither the front ends (aiohttp, grpc) nor the dispatcher, and starts in a third of the time.
_LAZY_EXPORTS = {
    # scheduler: batching, routing, worker pools, metrics
    "PlanDispatcher": "hwfit.serve.scheduler.dispatcher",
    "DispatcherConfig": "hwfit.serve.scheduler.dispatcher",
    "PoolConfig": "hwfit.serve.scheduler.pools",
    "HealthPolicy": "hwfit.serve.scheduler.pools",
    "WatchdogPolicy": "hwfit.serve.scheduler.workers",
    "Worker": "hwfit.serve.scheduler.workers",
    "ReplicaHandle": "hwfit.serve.scheduler.workers",
    "WorkerSpec": "hwfit.serve.scheduler.workers",
    "WorkerInfo": "hwfit.serve.scheduler.workers",
    "WorkerFailure": "hwfit.serve.scheduler.workers",
    "BatchResult": "hwfit.serve.scheduler.workers",
    "load_replica": "hwfit.serve.scheduler.workers",
    "run_replica_batch": "hwfit.serve.scheduler.workers",
    "is_out_of_memory": "hwfit.serve.scheduler.workers",
    "queue_limit_samples": "hwfit.serve.scheduler.pools",
    "pool_variant": "hwfit.serve.scheduler.pools",
    "InProcess": "hwfit.serve.scheduler.inprocess",
    "ResultCache": "hwfit.serve.scheduler.cache",
    "ServeMetrics": "hwfit.serve.scheduler.metrics",
    "DirectDispatcher": "hwfit.serve.scheduler.direct",
    "default_plan": "hwfit.serve.scheduler.default_plan",
    "validate_request": "hwfit.serve.scheduler.validate",
    # front ends: KServe v2 over HTTP and gRPC, and the server around them
    "ServerConfig": "hwfit.serve.frontend.common",
    "ServerAddresses": "hwfit.serve.frontend.common",
    "RunningServer": "hwfit.serve.frontend.server",
    "Server": "hwfit.serve.frontend.server",
    "run_server": "hwfit.serve.frontend.server",
    "decode_http_request": "hwfit.serve.frontend.codec",
    "encode_http_response": "hwfit.serve.frontend.codec",
    "start_in_thread": "hwfit.serve.frontend.server",
    "freeze_startup_heap": "hwfit.serve.frontend.server",
}
__all__ += list(_LAZY_EXPORTS)


def __getattr__(name: str):
    if name in _LAZY_EXPORTS:
        import importlib

        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module 'hwfit.serve' has no attribute {name!r}")

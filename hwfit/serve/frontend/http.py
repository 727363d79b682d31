"""The KServe v2 HTTP/REST front end: health, metadata, infer (JSON and binary tensors), metrics,
and the OpenAPI document. Translates requests into FrontEnd calls and results into responses.

Why aiohttp: one dependency (uvicorn + starlette would be two, plus an ASGI layer), it runs in the
same asyncio loop as grpc.aio and the scheduler (no second thread pool between them), and it hands
us the raw body to cut at Inference-Header-Content-Length without a framework parsing it first.
It is not the fastest Python HTTP server, but what a request costs here is the model's compute
(milliseconds) plus decoding and a numpy copy; the framework's share does not decide throughput.

Auth: with a token set, every endpoint but /v2/health/live and /v2/health/ready needs
`Authorization: Bearer <token>`. The two probes stay open because load balancers and
orchestrators probe them without credentials, and they reveal nothing but up/down; model
metadata, inference, metrics and the API document do need the token.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from hwfit.serve.api import ModelInfo, PayloadTooLarge, ServeError, Unauthenticated
from hwfit.serve.frontend.codec import HEADER_LENGTH, decode_http_request, encode_http_response
from hwfit.serve.frontend.common import FrontEnd, ServerConfig
from hwfit.serve.frontend.openapi import Served, example_request, openapi_document

log = logging.getLogger("hwfit.serve.frontend.http")

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
# Decoding or encoding more than this many bytes runs in a thread, so one large request does not
# stall every other connection on the loop.
OFF_LOOP_BYTES = 1 << 20
TRITON_DATA_TYPES = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BYTES": "TYPE_STRING",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(front: FrontEnd, config: ServerConfig) -> web.Application:
    routes = HttpRoutes(front, config)
    app = web.Application(
        client_max_size=config.max_request_bytes,
        middlewares=[_error_middleware, _auth_middleware(front)],
    )
    app.add_routes(routes.table())
    return app


async def start_http_server(front: FrontEnd, config: ServerConfig) -> tuple[web.AppRunner, int]:
    """Bind and start; returns the runner (call .cleanup() to stop) and the bound port."""
    runner = web.AppRunner(make_app(front, config), access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.http_port)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise OSError(
            error.errno, f"cannot serve HTTP on {config.host}:{config.http_port}: {error.strerror}"
        ) from error
    port = int(runner.addresses[0][1])
    return runner, port


class HttpRoutes:
    """One method per endpoint; each turns a request into a FrontEnd call."""

    def __init__(self, front: FrontEnd, config: ServerConfig):
        self.front = front
        self.config = config

    def table(self) -> list[web.RouteDef]:
        model = "/v2/models/{name}"
        version = "/v2/models/{name}/versions/{version}"
        return [
            web.get("/v2/health/live", self.live),
            web.get("/v2/health/ready", self.ready),
            web.get("/v2", self.server_metadata),
            web.post("/v2/repository/index", self.repository_index),
            web.get(model, self.model_metadata),
            web.get(version, self.model_metadata),
            web.get(model + "/ready", self.model_ready),
            web.get(version + "/ready", self.model_ready),
            web.get(model + "/config", self.model_config),
            web.get(version + "/config", self.model_config),
            web.post(model + "/infer", self.infer),
            web.post(version + "/infer", self.infer),
            web.get("/metrics", self.metrics),
            web.get("/v2/openapi.json", self.openapi),
        ]

    async def live(self, request: web.Request) -> web.Response:
        live = self.front.live()
        return web.json_response({"live": live}, status=200 if live else 503)

    async def ready(self, request: web.Request) -> web.Response:
        ready = self.front.ready()
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def server_metadata(self, request: web.Request) -> web.Response:
        return web.json_response(self.front.server_metadata())

    async def repository_index(self, request: web.Request) -> web.Response:
        """Triton's repository index (read-only: the models served, each READY or UNAVAILABLE), so a
        client such as `hwfit load` can find the model without being told its name."""
        index = [
            {
                "name": info.name,
                "version": version,
                "state": "READY" if self.front.model_ready(info.name, version) else "UNAVAILABLE",
            }
            for info in self.front.dispatcher.models()
            for version in (info.versions or ("",))
        ]
        return web.json_response(index)

    async def model_metadata(self, request: web.Request) -> web.Response:
        info = self.front.model_info(*_model_path(request))
        return web.json_response(model_metadata(info))

    async def model_ready(self, request: web.Request) -> web.Response:
        ready = self.front.model_ready(*_model_path(request))
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def model_config(self, request: web.Request) -> web.Response:
        info = self.front.model_info(*_model_path(request))
        return web.json_response(model_config(info))

    async def infer(self, request: web.Request) -> web.Response:
        name, version = _model_path(request)
        info = self.front.model_info(name, version)
        body = await _read_body(request, self.config.max_request_bytes)
        outputs = tuple(spec.name for spec in info.outputs)
        decoded = await _off_loop(
            len(body), decode_http_request, body, request.headers.get(HEADER_LENGTH), name, version, outputs
        )
        response = await self.front.infer(decoded)
        output_bytes = sum(getattr(array, "nbytes", 0) for array in response.outputs.values())
        payload, json_length = await _off_loop(output_bytes, encode_http_response, response, decoded)
        if json_length is None:
            return web.Response(body=payload, content_type="application/json")
        return web.Response(
            body=payload, content_type="application/octet-stream", headers={HEADER_LENGTH: str(json_length)}
        )

    async def metrics(self, request: web.Request) -> web.Response:
        text = self.front.dispatcher.metrics_text()
        return web.Response(body=text.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openapi(self, request: web.Request) -> web.Response:
        models = self.front.dispatcher.models()
        served = Served(
            names=tuple(info.name for info in models),
            versions=tuple(dict.fromkeys(version for info in models for version in info.versions)),
            infer_example=example_request(models[0]) if len(models) == 1 else None,
        )
        return web.json_response(openapi_document(served))


def _model_path(request: web.Request) -> tuple[str, str | None]:
    return request.match_info["name"], request.match_info.get("version")


def model_metadata(info: ModelInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "versions": list(info.versions),
        "platform": info.platform,
        "inputs": [_tensor(t) for t in info.inputs],
        "outputs": [_tensor(t) for t in info.outputs],
    }


def model_config(info: ModelInfo) -> dict[str, Any]:
    """The subset of Triton's model configuration clients read: max_batch_size and tensor dims
    (without the batch dim, as Triton writes them when max_batch_size > 0)."""

    def dims(shape: tuple[int, ...]) -> list[int]:
        return list(shape[1:] if info.max_batch_size > 0 else shape)

    def tensor(t) -> dict[str, Any]:
        return {"name": t.name, "data_type": TRITON_DATA_TYPES[t.datatype], "dims": dims(t.shape)}

    return {
        "name": info.name,
        "platform": info.platform,
        "max_batch_size": info.max_batch_size,
        "input": [tensor(t) for t in info.inputs],
        "output": [tensor(t) for t in info.outputs],
    }


def _tensor(tensor) -> dict[str, Any]:
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(_too_large(request.content_length, limit))
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(_too_large(None, limit)) from None


def _too_large(size: int | None, limit: int) -> str:
    got = f"{size} bytes" if size is not None else "more than that"
    return f"request body is {got}; this server accepts at most {limit} bytes (ServerConfig.max_request_bytes)"


async def _off_loop(size: int, function: Callable, *args: Any) -> Any:
    if size < OFF_LOOP_BYTES:
        return function(*args)
    return await asyncio.to_thread(function, *args)


# --- errors and auth ------------------------------------------------------------------------------


def error_response(error: ServeError) -> web.Response:
    """The protocol's error body, `{"error": "..."}`, with the error's HTTP status."""
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="hwfit"'
    return web.json_response({"error": str(error)}, status=error.http_status, headers=headers)


@web.middleware
async def _error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ServeError as error:
        return error_response(error)
    except web.HTTPException as error:  # no such route, wrong method, body too large
        if error.status < 400:
            raise
        headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
        message = f"{error.reason}: {request.method} {request.path}"
        return web.json_response({"error": message}, status=error.status, headers=headers)
    except Exception as error:
        log.exception("HTTP %s %s failed", request.method, request.path)
        return web.json_response({"error": f"internal error: {type(error).__name__}: {error}"}, status=500)


def _auth_middleware(front: FrontEnd) -> Callable:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            front.authorize(request.headers.get("Authorization"))
        return await handler(request)

    return auth

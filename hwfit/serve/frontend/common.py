"""What the HTTP and gRPC front ends share: the server's configuration and bound addresses, and
`FrontEnd` (authorization, health, hand-off to the dispatcher). Both answer the same request the
same way because both go through here; the dispatcher checks the request against the model, once."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from hwfit import __version__
from hwfit.serve.api import (
    Dispatcher,
    InferRequest,
    InferResponse,
    InternalError,
    ModelInfo,
    ServeError,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger("hwfit.serve")

SERVER_NAME = "hwfit"
# KServe v2 extensions this server implements (what /v2 and ServerMetadata report).
EXTENSIONS = ("binary_tensor_data", "parameters")


@dataclass
class ServerConfig:
    """Where and how to serve. Port 0 picks a free port (the real one is reported once bound)."""

    host: str = "127.0.0.1"  # loopback unless asked: a model server is not public by default
    http_port: int = 8000
    grpc_port: int = 8001
    token: str | None = None  # bearer token required on every endpoint but the health probes
    max_request_bytes: int = 64 * 2**20
    drain_s: float = 10.0  # on stop: how long accepted requests may take to finish


@dataclass(frozen=True)
class ServerAddresses:
    """The ports the server really bound."""

    host: str
    http_port: int
    grpc_port: int

    @property
    def http_url(self) -> str:
        return f"http://{_host_port(self.host, self.http_port)}"

    @property
    def http_address(self) -> str:
        """host:port, the form tritonclient.http wants."""
        return _host_port(self.host, self.http_port)

    @property
    def grpc_url(self) -> str:
        """host:port, the form gRPC channels and tritonclient.grpc want."""
        return _host_port(self.host, self.grpc_port)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class FrontEnd:
    """What the HTTP and gRPC front ends share: the dispatcher, the token, and the draining flag.

    Both front ends answer the same request the same way because both go through here.
    """

    dispatcher: Dispatcher
    token: str | None = None
    draining: bool = False

    def authorize(self, authorization: str | None) -> None:
        """Raise Unauthenticated unless `authorization` is `Bearer <token>` (when a token is set)."""
        if self.token is None:
            return
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise Unauthenticated("missing or wrong bearer token: send the header 'Authorization: Bearer <token>'")

    def live(self) -> bool:
        return self.dispatcher.live()

    def ready(self) -> bool:
        """Ready for traffic: not draining and the dispatcher says so."""
        return not self.draining and self.dispatcher.ready()

    def model_info(self, name: str, version: str | None = None) -> ModelInfo:
        """Raises ModelNotFound."""
        return self.dispatcher.model_info(name, version or None)

    def model_ready(self, name: str, version: str | None = None) -> bool:
        self.model_info(name, version)  # an unknown model is NOT_FOUND, not merely "not ready"
        return not self.draining and self.dispatcher.ready(name, version or None)

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}

    async def infer(self, request: InferRequest) -> InferResponse:
        """Hand a decoded request to the dispatcher, which validates it against the model (a misfit is
        a BadRequest there, with the models layer's message); every failure is a ServeError."""
        if self.draining:
            raise Unavailable("the server is shutting down and accepts no new requests; retry on another replica")
        try:
            return await self.dispatcher.infer(request)
        except ServeError:
            raise
        except Exception as error:  # a dispatcher bug must still be answered, and logged
            log.exception("dispatcher failed on a request for %s", request.model_name)
            raise InternalError(f"the server failed on this request: {type(error).__name__}: {error}") from error

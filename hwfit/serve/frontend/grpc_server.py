"""The KServe v2 gRPC front end (`inference.GRPCInferenceService` on grpc.aio): health, metadata
and ModelInfer with raw_input_contents or typed contents, answering with raw_output_contents as
Triton does, so tritonclient.grpc works unchanged. Errors are gRPC status codes from ServeError.

Requests are parsed here rather than by grpc's deserializer so that garbage bytes are answered
INVALID_ARGUMENT (the client's fault) rather than grpc's INTERNAL.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np
from google.protobuf.message import DecodeError

from hwfit.serve.api import BadRequest, InferRequest, InferResponse, InternalError, ModelInfo, ServeError
from hwfit.serve.frontend.codec import (
    TensorHeader,
    array_from_raw,
    cast_values,
    datatype_of_array,
    raw_from_array,
    request_options,
    tensor_header,
)
from hwfit.serve.frontend.common import FrontEnd, ServerConfig
from hwfit.serve.frontend.proto import grpc_service_pb2 as pb

log = logging.getLogger("hwfit.serve.grpc")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name  # inference.GRPCInferenceService
OPEN_METHODS = frozenset({"ServerLive", "ServerReady"})  # health probes: no token (see http.py)

# Typed contents field per datatype (FP16 has none: it must come as raw bytes).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
CONTENTS_FIELDS = sorted(set(CONTENTS_FIELD.values()))


async def start_grpc_server(front: FrontEnd, config: ServerConfig) -> tuple[grpc.aio.Server, int]:
    """Bind and start; returns the server (await .stop(grace)) and the bound port."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_request_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),  # a taken port is an error, not a silently shared one
        ]
    )
    server.add_generic_rpc_handlers((InferenceService(front).handler(),))
    address = f"[{config.host}]:{config.grpc_port}" if ":" in config.host else f"{config.host}:{config.grpc_port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"cannot serve gRPC on {address}: {error}") from error
    await server.start()
    return server, port


class InferenceService:
    """One async method per RPC, each taking the parsed request message."""

    def __init__(self, front: FrontEnd):
        self.front = front

    def handler(self) -> grpc.GenericRpcHandler:
        methods = {
            "ServerLive": (self.server_live, pb.ServerLiveRequest, pb.ServerLiveResponse),
            "ServerReady": (self.server_ready, pb.ServerReadyRequest, pb.ServerReadyResponse),
            "ModelReady": (self.model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse),
            "ServerMetadata": (self.server_metadata, pb.ServerMetadataRequest, pb.ServerMetadataResponse),
            "ModelMetadata": (self.model_metadata, pb.ModelMetadataRequest, pb.ModelMetadataResponse),
            "ModelInfer": (self.model_infer, pb.ModelInferRequest, pb.ModelInferResponse),
        }
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self._guarded(name, method, request_type),
                request_deserializer=None,  # raw bytes: parsed in _guarded
                response_serializer=response_type.SerializeToString,
            )
            for name, (method, request_type, response_type) in methods.items()
        }
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    def _guarded(self, name: str, method: Callable[[Any], Awaitable[Any]], request_type: type) -> Callable:
        """Check the token, parse the bytes, run the method; any failure becomes a status code."""

        async def call(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            try:
                if name not in OPEN_METHODS:
                    self.front.authorize(_metadata(context, "authorization"))
                return await method(_parse(request_type, raw))
            except ServeError as error:
                failure = error
            except Exception as error:
                log.exception("gRPC %s failed", name)
                failure = InternalError(f"the server failed on this request: {type(error).__name__}: {error}")
            await _abort(context, failure)

        return call

    async def server_live(self, request: pb.ServerLiveRequest) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.front.live())

    async def server_ready(self, request: pb.ServerReadyRequest) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.front.ready())

    async def model_ready(self, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self.front.model_ready(request.name, request.version or None))

    async def server_metadata(self, request: pb.ServerMetadataRequest) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**self.front.server_metadata())

    async def model_metadata(self, request: pb.ModelMetadataRequest) -> pb.ModelMetadataResponse:
        return model_metadata(self.front.model_info(request.name, request.version or None))

    async def model_infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        info = self.front.model_info(request.model_name, request.model_version or None)
        decoded = decode_grpc_request(request, info)
        response = await self.front.infer(decoded)
        return encode_grpc_response(response, decoded)


def _parse(request_type: type, raw: bytes) -> Any:
    try:
        return request_type.FromString(raw)
    except DecodeError as error:
        raise BadRequest(
            f"the request is not a valid {request_type.DESCRIPTOR.full_name} protobuf message ({error})"
        ) from None


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return None


async def _abort(context: grpc.aio.ServicerContext, error: ServeError) -> None:
    trailing = ()
    if error.retry_after_s is not None:
        trailing = (("retry-after", str(max(1, round(error.retry_after_s)))),)
    await context.abort(getattr(grpc.StatusCode, error.grpc_code), str(error), trailing_metadata=trailing)


# --- metadata -----------------------------------------------------------------------------------


def model_metadata(info: ModelInfo) -> pb.ModelMetadataResponse:
    def tensor(t) -> pb.ModelMetadataResponse.TensorMetadata:
        return pb.ModelMetadataResponse.TensorMetadata(name=t.name, datatype=t.datatype, shape=list(t.shape))

    return pb.ModelMetadataResponse(
        name=info.name,
        versions=list(info.versions),
        platform=info.platform,
        inputs=[tensor(t) for t in info.inputs],
        outputs=[tensor(t) for t in info.outputs],
    )


# --- infer request and response ------------------------------------------------------------------


def decode_grpc_request(message: pb.ModelInferRequest, info: ModelInfo) -> InferRequest:
    """A ModelInferRequest -> InferRequest (tensor form only; the dispatcher checks the model fit)."""
    options = request_options(_parameters(message.parameters))
    raw_contents = list(message.raw_input_contents)
    if raw_contents and len(raw_contents) != len(message.inputs):
        raise BadRequest(
            f"raw_input_contents has {len(raw_contents)} entries for {len(message.inputs)} inputs; "
            "expected one per input, in the order of 'inputs'"
        )
    if not message.inputs:
        raise BadRequest("the request has no inputs; expected at least one entry in 'inputs'")
    inputs: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(message.inputs):
        header = tensor_header(tensor.name, tensor.datatype, list(tensor.shape))
        if header.name in inputs:
            raise BadRequest(f"input '{header.name}' is given twice; each input must appear once")
        if raw_contents:
            _refuse_typed_contents(header, tensor)
            inputs[header.name] = array_from_raw(header, raw_contents[index])
        else:
            inputs[header.name] = array_from_contents(header, tensor.contents)
    return InferRequest(
        model_name=message.model_name,
        model_version=message.model_version or None,
        inputs=inputs,
        id=message.id or None,
        requested_outputs=_requested_outputs(message),
        options=options,
    )


def _parameters(parameters) -> dict[str, Any]:
    """InferParameter map -> {name: python value}."""
    return {name: _parameter_value(parameter) for name, parameter in parameters.items()}


def _parameter_value(parameter: pb.InferParameter) -> Any:
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def _refuse_typed_contents(header: TensorHeader, tensor) -> None:
    if any(len(getattr(tensor.contents, field)) for field in CONTENTS_FIELDS):
        raise BadRequest(
            f"input '{header.name}' has typed 'contents' while the request uses raw_input_contents; "
            "send every input one way or the other"
        )


def array_from_contents(header: TensorHeader, contents: pb.InferTensorContents) -> np.ndarray:
    """A tensor from InferTensorContents: the field that matches the datatype, row-major."""
    field = CONTENTS_FIELD.get(header.datatype)
    if field is None:
        raise BadRequest(
            f"input '{header.name}' is {header.datatype}, which has no typed contents; send it in raw_input_contents"
        )
    misplaced = [name for name in CONTENTS_FIELDS if name != field and len(getattr(contents, name))]
    if misplaced:
        raise BadRequest(
            f"input '{header.name}' is {header.datatype}; its values belong in contents.{field}, "
            f"but contents.{misplaced[0]} is filled"
        )
    values = list(getattr(contents, field))
    if len(values) != header.count:
        raise BadRequest(
            f"input '{header.name}' has {len(values)} value(s) in contents.{field}; shape {list(header.shape)} "
            f"needs {header.count}"
        )
    if header.datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(header.shape)
    source = {"bool_contents": bool, "fp32_contents": np.float32, "fp64_contents": np.float64}.get(field, np.int64)
    if field == "uint64_contents":
        source = np.uint64
    return cast_values(header, np.asarray(values, dtype=source)).reshape(header.shape)


def _requested_outputs(message: pb.ModelInferRequest) -> list[str] | None:
    if not message.outputs:
        return None
    names: list[str] = []
    for output in message.outputs:
        if not output.name:
            raise BadRequest("every requested output needs a 'name'")
        if output.name in names:
            raise BadRequest(f"output '{output.name}' is requested twice")
        classification = output.parameters.get("classification")
        if classification is not None and _parameter_value(classification):
            raise BadRequest(f"output '{output.name}' asks for classification, which this server does not offer")
        names.append(output.name)
    return names


def encode_grpc_response(response: InferResponse, request: InferRequest) -> pb.ModelInferResponse:
    """Outputs as raw_output_contents, one per output in the order of `outputs`, as Triton sends them."""
    names = request.requested_outputs if request.requested_outputs is not None else list(response.outputs)
    missing = [name for name in names if name not in response.outputs]
    if missing:
        raise InternalError(f"the model returned no output(s) {missing}; it returned {list(response.outputs)}")
    message = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id or ""
    )
    if response.pool is not None:
        message.parameters["pool"].string_param = response.pool
    for name in names:
        array = np.asarray(response.outputs[name])
        message.outputs.add(name=name, datatype=datatype_of_array(array), shape=list(array.shape))
        message.raw_output_contents.append(raw_from_array(array))
    return message

"""The gRPC front end with the real tritonclient.grpc (and raw channels for what no client would
send) against a real server on 127.0.0.1: metadata, health, raw and typed tensor contents equal to
running the model directly, status codes for every error, malformed messages, and the checked-in
stubs matching the .proto."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from hwfit.serve.frontend.proto import grpc_service_pb2 as pb
from hwfit.serve.frontend.proto import grpc_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.timeout(60)

INFER = "/inference.GRPCInferenceService/ModelInfer"


def _client(server):
    import tritonclient.grpc as triton_grpc

    return triton_grpc.InferenceServerClient(server.grpc_url)


def _inputs(arrays: dict[str, np.ndarray]):
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import np_to_triton_dtype

    tensors = []
    for name, array in arrays.items():
        tensor = triton_grpc.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


def _status(callable_, *args, **kwargs) -> tuple[str, str]:
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as caught:
        callable_(*args, **kwargs)
    return caught.value.status(), caught.value.message()


def _raw_call(server, payload: bytes, method: str = INFER, metadata=()):
    """Send raw bytes to a method; returns the RpcError (the call must fail)."""
    with grpc.insecure_channel(server.grpc_url) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as caught:
            call(payload, timeout=10, metadata=metadata)
    return caught.value


def _typed_request(x: np.ndarray, ids: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="tiny")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    tensor.contents.fp32_contents.extend(x.reshape(-1).tolist())
    tensor = request.inputs.add(name="ids", datatype="INT64", shape=list(ids.shape))
    tensor.contents.int64_contents.extend(ids.reshape(-1).tolist())
    return request


# --- metadata and health ------------------------------------------------------------------------


def test_health_and_metadata(tiny_server):
    client = _client(tiny_server)
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata.name == "hwfit" and "binary_tensor_data" in metadata.extensions
    model = client.get_model_metadata("tiny", as_json=True)
    assert model["versions"] == ["1"]
    assert model["inputs"][0] == {"name": "x", "datatype": "FP32", "shape": ["-1", "4"]}  # int64 as JSON strings
    assert [o["name"] for o in model["outputs"]] == ["y", "energy"]
    assert client.is_model_ready("tiny") and client.is_model_ready("tiny", "1")


# --- inference ----------------------------------------------------------------------------------


def test_infer_equals_running_the_model_directly(tiny_server, tiny_inputs, reference):
    arrays = tiny_inputs(batch=3, seed=5)
    result = _client(tiny_server).infer("tiny", _inputs(arrays), request_id="g1")
    expected = reference(arrays)
    for name in ("y", "energy"):
        np.testing.assert_allclose(result.as_numpy(name), expected[name], rtol=1e-6, atol=1e-6)
    response = result.get_response()
    assert response.id == "g1" and len(response.raw_output_contents) == 2  # raw, as Triton answers


def test_requested_outputs_in_requested_order(tiny_server, tiny_inputs, reference):
    import tritonclient.grpc as triton_grpc

    arrays = tiny_inputs(batch=2, seed=6)
    outputs = [triton_grpc.InferRequestedOutput("energy"), triton_grpc.InferRequestedOutput("y")]
    result = _client(tiny_server).infer("tiny", _inputs(arrays), outputs=outputs)
    assert [o.name for o in result.get_response().outputs] == ["energy", "y"]
    np.testing.assert_allclose(result.as_numpy("y"), reference(arrays)["y"], rtol=1e-6)


def test_typed_contents_are_accepted(tiny_server, tiny_inputs, reference):
    arrays = tiny_inputs(batch=2, seed=7)
    with grpc.insecure_channel(tiny_server.grpc_url) as channel:
        response = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(_typed_request(**arrays), timeout=10)
    assert [o.name for o in response.outputs] == ["y", "energy"]
    y = np.frombuffer(response.raw_output_contents[0], dtype=np.float32).reshape(response.outputs[0].shape)
    np.testing.assert_allclose(y, reference(arrays)["y"], rtol=1e-6)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda a: {"z": a["x"], "ids": a["ids"]}, "unknown input(s) ['z']"),
        (
            lambda a: {"x": a["x"].astype(np.float64), "ids": a["ids"]},
            "input 'x' has dtype float64; the model expects float32",
        ),
        (lambda a: {"x": np.zeros((2, 3), np.float32), "ids": a["ids"]}, "axis 1 must be 4"),
        (lambda a: {"x": np.zeros((6, 4), np.float32), "ids": np.zeros((6, 4), np.int64)}, "max_batch_size 4"),
        (lambda a: {"x": np.full((2, 4), np.inf, np.float32), "ids": a["ids"]}, "non-finite"),
    ],
    ids=["name", "dtype", "shape", "batch", "non-finite"],
)
def test_inputs_that_do_not_fit_are_invalid_argument(tiny_server, tiny_inputs, change, expected):
    status, message = _status(_client(tiny_server).infer, "tiny", _inputs(change(tiny_inputs(batch=2))))
    assert status == "StatusCode.INVALID_ARGUMENT"
    assert expected in message


def test_unknown_model_is_not_found(tiny_server, tiny_inputs):
    client = _client(tiny_server)
    assert _status(client.infer, "nope", _inputs(tiny_inputs()))[0] == "StatusCode.NOT_FOUND"
    assert _status(client.get_model_metadata, "nope")[0] == "StatusCode.NOT_FOUND"
    assert _status(client.get_model_metadata, "tiny", "3")[0] == "StatusCode.NOT_FOUND"


def test_typed_contents_in_the_wrong_field_or_count(tiny_server, tiny_inputs):
    arrays = tiny_inputs(batch=2)
    wrong_field = _typed_request(**arrays)
    values = list(wrong_field.inputs[0].contents.fp32_contents)
    wrong_field.inputs[0].contents.ClearField("fp32_contents")
    wrong_field.inputs[0].contents.fp64_contents.extend(values)
    short = _typed_request(**arrays)
    del short.inputs[1].contents.int64_contents[-1]
    mixed = _typed_request(**arrays)
    mixed.raw_input_contents.extend([arrays["x"].tobytes(), arrays["ids"].tobytes()])
    cases = [
        (wrong_field, "its values belong in contents.fp32_contents, but contents.fp64_contents is filled"),
        (short, "input 'ids' has 7 value(s) in contents.int64_contents; shape [2, 4] needs 8"),
        (mixed, "has typed 'contents' while the request uses raw_input_contents"),
    ]
    for request, expected in cases:
        error = _raw_call(tiny_server, request.SerializeToString())
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert expected in error.details()


def test_malformed_messages_get_status_codes_and_the_server_survives(tiny_server):
    garbage = _raw_call(tiny_server, b"\xff\xff\xff\xff\x0f garbage \x00\x01")
    assert garbage.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid inference.ModelInferRequest" in garbage.details()
    # field 1 (model_name, a string) sent as a varint: protobuf keeps it as an unknown field
    assert _raw_call(tiny_server, b"\x08\x01").code() == grpc.StatusCode.NOT_FOUND
    # field 5 (inputs, a message) holding bytes that are not a message
    assert _raw_call(tiny_server, b"\x2a\x03\xff\xff\xff").code() == grpc.StatusCode.INVALID_ARGUMENT
    # a string field that is not UTF-8
    assert _raw_call(tiny_server, b"\x0a\x02\xff\xfe").code() == grpc.StatusCode.INVALID_ARGUMENT
    # raw contents that do not match the tensor's size
    request = pb.ModelInferRequest(model_name="tiny")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    request.inputs.add(name="ids", datatype="INT64", shape=[1, 4])
    request.raw_input_contents.extend([b"\0" * 15, b"\0" * 32])
    error = _raw_call(tiny_server, request.SerializeToString())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "input 'x' has 15 bytes" in error.details()
    # an RPC hwfit does not serve
    assert _status(_client(tiny_server).get_model_config, "tiny")[0] == "StatusCode.UNIMPLEMENTED"
    assert _client(tiny_server).is_server_live()


def test_too_large_a_message_is_resource_exhausted(tiny_server):
    request = pb.ModelInferRequest(model_name="tiny")
    request.raw_input_contents.append(b"\0" * (1 << 20))  # the fixture's limit is 1 MiB
    error = _raw_call(tiny_server, request.SerializeToString())
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _client(tiny_server).is_server_live()


# --- token and admission ------------------------------------------------------------------------


def test_token_is_required_except_for_health(guarded_server, tiny_inputs, token):
    client = _client(guarded_server)
    assert client.is_server_live() and client.is_server_ready()
    status, message = _status(client.get_model_metadata, "tiny")
    assert status == "StatusCode.UNAUTHENTICATED" and "bearer token" in message
    assert _status(client.infer, "tiny", _inputs(tiny_inputs()))[0] == "StatusCode.UNAUTHENTICATED"
    headers = {"authorization": f"Bearer {token}"}
    assert client.get_model_metadata("tiny", headers=headers).name == "tiny"
    assert client.infer("tiny", _inputs(tiny_inputs()), headers=headers).as_numpy("y").shape == (2, 3)


def test_rejected_is_resource_exhausted_with_retry_after(guarded_server, tiny_inputs, token):
    request = _typed_request(**tiny_inputs(batch=1))
    request.parameters["priority"].uint64_param = 9  # as tritonclient sets it
    error = _raw_call(guarded_server, request.SerializeToString(), metadata=(("authorization", f"Bearer {token}"),))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "priority level 9 is 9 or lower" in error.details()
    assert dict(error.trailing_metadata())["retry-after"] == "2"


def test_bad_parameters_are_invalid_argument(tiny_server, tiny_inputs):
    for name, set_value, expected in [
        ("timeout_ms", lambda p: setattr(p, "double_param", -5.0), "'timeout_ms' must be a number of milliseconds > 0"),
        ("tier", lambda p: setattr(p, "string_param", "gold"), "'tier' must be one of full, degraded"),
        ("priority", lambda p: setattr(p, "string_param", "high"), "'priority' must be a priority level"),
    ]:
        request = _typed_request(**tiny_inputs(batch=1))
        set_value(request.parameters[name])
        error = _raw_call(tiny_server, request.SerializeToString())
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and expected in error.details(), name


# --- the checked-in stubs -----------------------------------------------------------------------


def test_checked_in_stubs_match_the_proto(tmp_path):
    import grpc_tools  # noqa: F401 - grpcio-tools (test extra) regenerates the stubs: imported, not skipped

    from hwfit.serve.frontend.proto import generate

    for path in generate.generate(tmp_path):
        checked_in = generate.HERE / path.name
        assert path.read_text() == checked_in.read_text(), (
            f"{checked_in} is stale: run python -m hwfit.serve.frontend.proto.generate"
        )


def test_field_numbers_match_tritons_proto():
    """Every message we define has the fields of Triton's message of the same name, same numbers and types."""
    from tritonclient.grpc import service_pb2 as triton

    def fields(descriptor):
        return {f.name: (f.number, f.type, f.is_repeated) for f in descriptor.fields}

    def walk(ours, theirs):
        assert fields(ours).items() <= fields(theirs).items(), ours.full_name
        for nested in ours.nested_types:
            walk(nested, theirs.nested_types_by_name[nested.name])

    for name, descriptor in pb.DESCRIPTOR.message_types_by_name.items():
        walk(descriptor, triton.DESCRIPTOR.message_types_by_name[name])
    ours = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert ours.full_name == theirs.full_name
    for method in ours.methods:
        assert theirs.methods_by_name[method.name].input_type.full_name == method.input_type.full_name


def test_tritonclients_priority_argument_keeps_tritons_meaning(guarded_server, tiny_inputs, token):
    client, good = _client(guarded_server), {"authorization": f"Bearer {token}"}
    assert client.infer("tiny", _inputs(tiny_inputs()), headers=good, priority=1).as_numpy("y").shape == (2, 3)
    status, message = _status(client.infer, "tiny", _inputs(tiny_inputs()), headers=good, priority=9)
    assert status == "StatusCode.RESOURCE_EXHAUSTED" and "priority level 9 is 9 or lower" in message

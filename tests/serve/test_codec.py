"""KServe v2 codec: tensors encoded by the real tritonclient decode to the same arrays, responses we
encode read back through tritonclient's own parser, and every malformed body is a BadRequest that
names the tensor and what was expected."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwfit.serve.api import BadRequest, InferRequest, InferResponse
from hwfit.serve.frontend.codec import (
    decode_http_request,
    encode_http_response,
    raw_from_array,
    request_options,
)

pytestmark = pytest.mark.timeout(30)


def _client_body(arrays: dict[str, np.ndarray], binary: bool, outputs=None, **kwargs):
    """The body and JSON length tritonclient.http would send for these arrays."""
    import tritonclient.http as triton_http
    from tritonclient.utils import np_to_triton_dtype

    inputs = []
    for name, array in arrays.items():
        tensor = triton_http.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    body, json_size = triton_http.InferenceServerClient.generate_request_body(inputs, outputs=outputs, **kwargs)
    return body, None if json_size is None else str(json_size)


ARRAYS = {
    "f32": np.arange(12, dtype=np.float32).reshape(2, 3, 2) / 7,
    "f16": np.array([[1.5, -2.25]], dtype=np.float16),
    "f64": np.array([1e-300, 3.5]),
    "i8": np.array([[-128, 127]], dtype=np.int8),
    "u16": np.array([65535, 0], dtype=np.uint16),
    "i64": np.array([[2**62, -(2**62)]], dtype=np.int64),
    "u64": np.array([2**64 - 1], dtype=np.uint64),
    "flag": np.array([[True, False, True]]),
    "text": np.array([[b"hello", b""], ["d\xc3\xa9j\xc3\xa0 vu".encode("latin-1"), b"x"]], dtype=object),
}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_inputs_decode_to_the_same_arrays(binary):
    arrays = dict(ARRAYS)
    if not binary:  # JSON carries BYTES as UTF-8 strings
        arrays["text"] = np.array([["hello", ""], ["déjà vu", "x"]], dtype=object)
    body, header_length = _client_body(arrays, binary)
    assert (header_length is not None) == binary
    request = decode_http_request(body, header_length, "m")
    assert list(request.inputs) == list(arrays)
    for name, expected in arrays.items():
        got = request.inputs[name]
        assert got.shape == expected.shape, name
        if name == "text":
            want = [item if isinstance(item, bytes) else item.encode() for item in expected.reshape(-1)]
            assert list(got.reshape(-1)) == want
        else:
            assert got.dtype == expected.dtype, name
            np.testing.assert_array_equal(got, expected)


def test_nested_json_data_is_accepted_row_major():
    body = json.dumps({"inputs": [{"name": "a", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}]})
    request = decode_http_request(body.encode(), None, "m")
    np.testing.assert_array_equal(request.inputs["a"], np.array([[1, 2], [3, 4]], dtype=np.int32))


def test_requested_outputs_and_binary_flags():
    import tritonclient.http as triton_http

    x = np.zeros((1, 2), np.float32)
    outputs = [
        triton_http.InferRequestedOutput("a", binary_data=True),
        triton_http.InferRequestedOutput("b", binary_data=False),
    ]
    body, header_length = _client_body({"x": x}, True, outputs=outputs, request_id="r1")
    request = decode_http_request(body, header_length, "m", all_outputs=("a", "b", "c"))
    assert request.requested_outputs == ["a", "b"]
    assert request.binary_outputs == {"a"}
    assert request.id == "r1"
    # no outputs named: tritonclient asks for every output in binary
    body, header_length = _client_body({"x": x}, True)
    request = decode_http_request(body, header_length, "m", all_outputs=("a", "b", "c"))
    assert request.requested_outputs is None and request.binary_outputs == {"a", "b", "c"}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_encoded_response_reads_back_through_tritonclient(binary):
    from tritonclient.http import InferResult

    outputs = {
        "scores": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
        "ids": np.array([3, 1], dtype=np.int64),
        "labels": np.array([b"cat", b"dog"], dtype=object),
    }
    request = InferRequest("m", {}, requested_outputs=["labels", "scores", "ids"])
    request.binary_outputs = {"labels", "scores", "ids"} if binary else set()
    response = InferResponse("m", "1", outputs, id="r7")
    body, json_length = encode_http_response(response, request)
    assert (json_length is not None) == binary
    result = InferResult.from_response_body(body, header_length=json_length)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["labels", "scores", "ids"]
    assert result.get_response()["id"] == "r7"
    for name, expected in outputs.items():
        got = result.as_numpy(name)
        if name == "labels":
            assert [bytes(v) if not isinstance(v, str) else v.encode() for v in got] == list(expected)
        else:
            np.testing.assert_array_equal(got, expected)


def test_binary_outputs_follow_the_json_in_output_order():
    outputs = {"a": np.array([1, 2], np.int32), "b": np.array([3.0], np.float64)}
    request = InferRequest("m", {}, requested_outputs=["b", "a"], binary_outputs={"a", "b"})
    body, json_length = encode_http_response(InferResponse("m", "1", outputs), request)
    header = json.loads(body[:json_length])
    assert [o["parameters"]["binary_data_size"] for o in header["outputs"]] == [8, 8]
    assert body[json_length:] == raw_from_array(outputs["b"]) + raw_from_array(outputs["a"])


def _bad(body: dict | bytes, header_length: str | None = None) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(BadRequest) as caught:
        decode_http_request(raw, header_length, "m")
    return str(caught.value)


def _one(**fields) -> dict:
    tensor = {"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0], **fields}
    return {"inputs": [tensor]}


@pytest.mark.parametrize(
    "body, expected",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
        ({"inputs": []}, "'inputs' must be a non-empty array"),
        ({"inputs": "x"}, "'inputs' must be a non-empty array"),
        (_one(datatype="FLOAT"), "input 'x' has datatype 'FLOAT'; expected one of BOOL"),
        (_one(datatype="BF16"), "BF16 is not served"),
        (_one(shape=[2, -1]), "input 'x' has shape [2, -1]; expected a list of integers >= 0"),
        (_one(shape=[3]), "input 'x' has 2 value(s) in 'data'; shape [3] needs 3"),
        (_one(data=[[1.0], [2.0, 3.0]]), "input 'x' has 'data' that is not a rectangular array"),
        (_one(data=["a", "b"]), "input 'x' is FP32; 'data' must hold numbers, got strings"),
        (_one(data=[1e39, 0.0]), "input 'x' is FP32; values must lie within"),
        (_one(datatype="INT8", data=[1, 300]), "input 'x' is INT8; values must lie in [-128, 127], got [1, 300]"),
        (_one(datatype="INT32", data=[1.5, 2]), "input 'x' is INT32; 'data' must hold integers, got floating-point"),
        (_one(datatype="BOOL", data=[1, 0]), "input 'x' is BOOL; 'data' must hold true/false"),
        (_one(datatype="BYTES", data=["a", 3]), "BYTES input 'x' must hold strings"),
        (_one(data=None), "input 'x' has 'data' of null; expected an array"),
        ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}, "input 'x' has no 'data'"),
        ({"inputs": [_one()["inputs"][0], _one()["inputs"][0]]}, "input 'x' is given twice"),
        ({"inputs": [{"datatype": "FP32", "shape": [1], "data": [1]}]}, "every input needs a 'name'"),
        (_one(parameters={"binary_data_size": 8}), "no Inference-Header-Content-Length header"),
        (_one(parameters={"shared_memory_region": "r"}), "shared memory"),
        ({**_one(), "outputs": [{"name": "y", "parameters": {"classification": 3}}]}, "classification"),
        ({**_one(), "outputs": [{"name": "y"}, {"name": "y"}]}, "output 'y' is requested twice"),
        ({**_one(), "id": 5}, "'id' must be a string"),
    ],
)
def test_malformed_bodies_are_bad_requests_naming_the_problem(body, expected):
    assert expected in _bad(body)


def test_binary_sections_must_add_up():
    x = np.arange(4, dtype=np.float32)
    body, header_length = _client_body({"x": x}, True)
    assert "byte(s) of binary data after the JSON" in _bad(body + b"\0\0\0\0", header_length)
    assert "only 12 byte(s) of binary data remain" in _bad(body[:-4], header_length)
    assert "header Inference-Header-Content-Length is 99999" in _bad(body, "99999")
    assert "must be an integer byte count" in _bad(body, "ten")
    # the binary size is consistent but does not match FP32 x shape [4]
    header = json.loads(body[: int(header_length)])
    header["inputs"][0]["parameters"]["binary_data_size"] = 12
    forged = json.dumps(header).encode()
    message = _bad(forged + x.tobytes()[:12], str(len(forged)))
    assert "input 'x' has 12 bytes of binary data; expected 16 (FP32, shape [4]: 4 x 4 bytes)" in message


def test_malformed_binary_bytes_tensor():
    header = json.dumps(
        {"inputs": [{"name": "s", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 9}}]}
    ).encode()
    one_item = (3).to_bytes(4, "little") + b"abc" + b"\x01\x00"
    assert "4-byte little-endian length" in _bad(header + one_item, str(len(header)))
    too_long = (200).to_bytes(4, "little") + b"abcde"
    assert "element 0 says 200 bytes but only 5 remain" in _bad(header + too_long, str(len(header)))


def test_request_options_from_parameters():
    assert request_options({}).timeout_ms is None
    options = request_options({"timeout_ms": 25, "priority": 3, "tier": "degraded", "custom": "ignored"})
    assert (options.timeout_ms, options.priority, options.tier) == (25.0, 3, "degraded")
    assert request_options({"timeout": 1500}).timeout_ms == 1.5  # Triton's microseconds


def test_priority_is_tritons_level_one_is_the_highest_zero_the_default():
    from hwfit.serve.api import DEFAULT_PRIORITY_LEVEL, PRIORITY_LEVELS

    levels = {p: request_options({"priority": p}) for p in (0, 1, 2, PRIORITY_LEVELS, PRIORITY_LEVELS + 1)}
    assert request_options({}).priority_level == DEFAULT_PRIORITY_LEVEL
    assert levels[0].priority_level == DEFAULT_PRIORITY_LEVEL  # what tritonclient sends when unset
    assert levels[PRIORITY_LEVELS + 1].priority_level == DEFAULT_PRIORITY_LEVEL  # past the lowest: Triton's rule
    assert levels[1].importance > levels[2].importance > levels[0].importance > levels[PRIORITY_LEVELS].importance


@pytest.mark.parametrize(
    "parameters, expected",
    [
        ({"timeout_ms": 0}, "'timeout_ms' must be a number of milliseconds > 0, got 0"),
        ({"timeout_ms": "5"}, "'timeout_ms' must be a number"),
        ({"timeout_ms": True}, "'timeout_ms' must be a number"),
        ({"timeout": 2.5}, "'timeout' (Triton's, in microseconds) must be an integer > 0"),
        ({"timeout": 5, "timeout_ms": 5}, "either parameter 'timeout_ms'"),
        ({"priority": 1.5}, "'priority' must be a priority level, an integer >= 0 (1 is the highest"),
        ({"priority": -1}, "'priority' must be a priority level, an integer >= 0"),
        ({"tier": "gold"}, "'tier' must be one of full, degraded, got 'gold'"),
        ({"sequence_id": 7}, "sequence batching is not supported"),
        ([1], "'parameters' must be an object"),
    ],
)
def test_bad_parameters_are_bad_requests(parameters, expected):
    with pytest.raises(BadRequest) as caught:
        request_options(parameters)
    assert expected in str(caught.value)

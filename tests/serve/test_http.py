"""The HTTP/REST front end with the real tritonclient.http (and plain urllib for what a client
library would refuse to send) against a real server on 127.0.0.1: metadata, health, inference
with JSON and binary tensors equal to running the model directly, and every error path."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(60)


def _client(server):
    import tritonclient.http as triton_http

    return triton_http.InferenceServerClient(server.http_address, connection_timeout=10, network_timeout=10)


def _inputs(arrays: dict[str, np.ndarray], binary: bool = True):
    import tritonclient.http as triton_http
    from tritonclient.utils import np_to_triton_dtype

    tensors = []
    for name, array in arrays.items():
        tensor = triton_http.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array, binary_data=binary)
        tensors.append(tensor)
    return tensors


def _request(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, parsed JSON or raw bytes) for one plain HTTP request."""
    request = urllib.request.Request(server.http_url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, response_headers, payload = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, response_headers, payload = error.code, error.headers, error.read()
    if response_headers.get("Content-Type", "").startswith("application/json"):
        return status, response_headers, json.loads(payload)
    return status, response_headers, payload


def _infer_json(x, ids, parameters=None) -> bytes:
    document = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.reshape(-1).tolist()},
            {"name": "ids", "datatype": "INT64", "shape": list(ids.shape), "data": ids.reshape(-1).tolist()},
        ]
    }
    if parameters is not None:
        document["parameters"] = parameters
    return json.dumps(document).encode()


def _error(callable_, *args, **kwargs):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as caught:
        callable_(*args, **kwargs)
    return caught.value.status(), caught.value.message()


# --- metadata and health ------------------------------------------------------------------------


def test_health_and_server_metadata(tiny_server):
    client = _client(tiny_server)
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "hwfit"
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_metadata_ready_and_config(tiny_server, tiny_max_batch):
    client = _client(tiny_server)
    metadata = client.get_model_metadata("tiny")
    assert metadata["versions"] == ["1"]
    assert metadata["platform"] == "hwfit/ort/cpu/fp32/b1/t1"
    assert metadata["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "ids", "datatype": "INT64", "shape": [-1, 4]},
    ]
    assert metadata["outputs"] == [
        {"name": "y", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "energy", "datatype": "FP32", "shape": [-1]},
    ]
    assert client.get_model_metadata("tiny", model_version="1") == metadata
    assert client.is_model_ready("tiny") and client.is_model_ready("tiny", "1")
    config = client.get_model_config("tiny")
    assert config["max_batch_size"] == tiny_max_batch
    assert config["input"][0] == {"name": "x", "data_type": "TYPE_FP32", "dims": [4]}


def test_unknown_model_or_version_is_404(tiny_server):
    client = _client(tiny_server)
    status, message = _error(client.get_model_metadata, "nope")
    assert status == "404" and "unknown model 'nope'" in message
    assert _error(client.get_model_metadata, "tiny", model_version="7")[0] == "404"
    assert not client.is_model_ready("nope")
    x = np.zeros((1, 4), np.float32)
    status, message = _error(client.infer, "nope", _inputs({"x": x, "ids": x.astype(np.int64)}))
    assert status == "404" and "this server serves ['tiny']" in message


# --- inference ----------------------------------------------------------------------------------


@pytest.mark.parametrize("binary_in, binary_out", [(True, True), (False, False), (True, False), (False, True)])
def test_infer_equals_running_the_model_directly(tiny_server, tiny_inputs, reference, binary_in, binary_out):
    import tritonclient.http as triton_http

    arrays = tiny_inputs(batch=3, seed=1)
    outputs = [
        triton_http.InferRequestedOutput("y", binary_data=binary_out),
        triton_http.InferRequestedOutput("energy", binary_data=binary_out),
    ]
    result = _client(tiny_server).infer("tiny", _inputs(arrays, binary_in), outputs=outputs, request_id="req-1")
    expected = reference(arrays)
    for name in ("y", "energy"):
        got = result.as_numpy(name)
        assert got.dtype == np.float32 and got.shape == expected[name].shape
        np.testing.assert_allclose(got, expected[name], rtol=1e-6, atol=1e-6)
    response = result.get_response()
    assert response["id"] == "req-1" and response["model_name"] == "tiny" and response["model_version"] == "1"
    assert all(("parameters" in o) == binary_out for o in response["outputs"])


def test_only_requested_outputs_come_back(tiny_server, tiny_inputs, reference):
    import tritonclient.http as triton_http

    arrays = tiny_inputs(batch=2, seed=2)
    result = _client(tiny_server).infer("tiny", _inputs(arrays), outputs=[triton_http.InferRequestedOutput("energy")])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["energy"]
    np.testing.assert_allclose(result.as_numpy("energy"), reference(arrays)["energy"], rtol=1e-6)


def test_plain_json_request_and_parameters(tiny_server, tiny_inputs, reference):
    arrays = tiny_inputs(batch=1, seed=3)
    body = _infer_json(arrays["x"], arrays["ids"], {"timeout_ms": 5000, "priority": 2, "tier": "full"})
    status, headers, document = _request(tiny_server, "POST", "/v2/models/tiny/versions/1/infer", body)
    assert status == 200 and "Inference-Header-Content-Length" not in headers
    by_name = {o["name"]: o for o in document["outputs"]}
    np.testing.assert_allclose(
        np.array(by_name["y"]["data"]).reshape(by_name["y"]["shape"]), reference(arrays)["y"], rtol=1e-6
    )


def test_gzip_compressed_request(tiny_server, tiny_inputs, reference):
    arrays = tiny_inputs(batch=2, seed=4)
    result = _client(tiny_server).infer("tiny", _inputs(arrays), request_compression_algorithm="gzip")
    np.testing.assert_allclose(result.as_numpy("y"), reference(arrays)["y"], rtol=1e-6)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda a: {"z": a["x"], "ids": a["ids"]},
            "unknown input(s) ['z'] and missing input(s) ['x']; the model's inputs are ['x', 'ids']",
        ),
        (lambda a: {"x": a["x"]}, "missing input(s) ['ids']"),
        (
            lambda a: {"x": a["x"], "ids": a["ids"].astype(np.int32)},
            "input 'ids' has dtype int32; the model expects int64",
        ),
        (
            lambda a: {"x": np.zeros((2, 5), np.float32), "ids": a["ids"]},
            "input 'x' has shape [2, 5]; axis 1 must be 4",
        ),
        (lambda a: {"x": np.zeros((2, 2, 2), np.float32), "ids": a["ids"]}, "the model expects rank 2"),
        (lambda a: {"x": a["x"][:1], "ids": a["ids"]}, "input 'ids' has B=2 on axis 0 but input 'x' has B=1"),
        (
            lambda a: {"x": np.zeros((5, 4), np.float32), "ids": np.zeros((5, 4), np.int64)},
            "the inputs have batch size 5 (input 'x' has B=5); this model takes 1 to 4 per request",
        ),
        (
            lambda a: {"x": np.full((2, 4), np.nan, np.float32), "ids": a["ids"]},
            "input 'x' holds 8 non-finite value(s)",
        ),
    ],
    ids=["unknown-input", "missing-input", "dtype", "dim", "rank", "batch-mismatch", "batch-too-big", "non-finite"],
)
def test_inputs_that_do_not_fit_are_400_naming_the_input(tiny_server, tiny_inputs, change, expected):
    status, message = _error(_client(tiny_server).infer, "tiny", _inputs(change(tiny_inputs(batch=2))))
    assert status == "400"
    assert expected in message


@pytest.mark.parametrize(
    "body, expected",
    [
        (b'{"inputs": [', "request body is not valid JSON"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2]}]}', "needs 4"),
        (None, "parameter 'timeout_ms' must be a number of milliseconds > 0, got -1"),
        ("priority", "parameter 'priority' must be a priority level, an integer >= 0"),
        ("tier", "parameter 'tier' must be one of full, degraded"),
    ],
)
def test_malformed_bodies_and_bad_parameters_are_400(tiny_server, tiny_inputs, body, expected):
    arrays = tiny_inputs(batch=1)
    bad_parameters = {None: {"timeout_ms": -1}, "priority": {"priority": "high"}, "tier": {"tier": "gold"}}
    if not isinstance(body, bytes):
        body = _infer_json(arrays["x"], arrays["ids"], bad_parameters[body])
    status, _, document = _request(tiny_server, "POST", "/v2/models/tiny/infer", body)
    assert status == 400
    assert expected in document["error"]


def test_unknown_route_and_wrong_method_answer_in_the_protocols_format(tiny_server):
    status, _, document = _request(tiny_server, "GET", "/v2/nothing/here")
    assert status == 404 and "error" in document
    status, headers, document = _request(tiny_server, "GET", "/v2/models/tiny/infer")
    assert status == 405 and "POST" in headers.get("Allow", "") and "error" in document


def test_too_large_a_body_is_413(tiny_server):
    body = b"{" + b" " * (1 << 20) + b"}"  # the fixture's limit is 1 MiB
    status, _, document = _request(tiny_server, "POST", "/v2/models/tiny/infer", body)
    assert status == 413 and "at most 1048576 bytes" in document["error"]
    # without a Content-Length (chunked), the limit is enforced while reading
    host, port = tiny_server.http_address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    chunks = (b" " * 65536 for _ in range(20))
    connection.request("POST", "/v2/models/tiny/infer", body=chunks, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413 and "error" in json.loads(response.read())
    connection.close()
    assert _client(tiny_server).is_server_live()


def test_metrics_and_openapi(tiny_server, tiny_inputs):
    _client(tiny_server).infer("tiny", _inputs(tiny_inputs(batch=1)))
    status, headers, text = _request(tiny_server, "GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'hwfit_inference_request_success_total{model="tiny"}' in text.decode()
    status, _, document = _request(tiny_server, "GET", "/v2/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.")
    served = {(route.method, route.path) for route in _routes()}
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert documented == served


def _routes():
    from hwfit.serve.frontend.http import HttpRoutes

    return HttpRoutes(front=None, config=None).table()


# --- token and admission (a server with a token and a shed-level-9-and-lower rule) --------------


def test_token_is_required_except_for_health_probes(guarded_server, tiny_inputs, token):
    client = _client(guarded_server)
    assert client.is_server_live() and client.is_server_ready()
    status, message = _error(client.get_model_metadata, "tiny")
    assert status == "401" and "bearer token" in message
    assert _error(client.infer, "tiny", _inputs(tiny_inputs()))[0] == "401"
    wrong = {"Authorization": "Bearer not-the-token"}
    assert _error(client.get_model_metadata, "tiny", headers=wrong)[0] == "401"
    status, headers, _ = _request(guarded_server, "GET", "/metrics")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    good = {"Authorization": f"Bearer {token}"}
    assert client.get_model_metadata("tiny", headers=good)["name"] == "tiny"
    assert client.infer("tiny", _inputs(tiny_inputs()), headers=good).as_numpy("y").shape == (2, 3)


def test_rejected_is_429_with_retry_after(guarded_server, tiny_inputs, token):
    arrays = tiny_inputs(batch=1)
    body = _infer_json(arrays["x"], arrays["ids"], {"priority": 10})
    headers = {"Authorization": f"Bearer {token}"}
    status, response_headers, document = _request(guarded_server, "POST", "/v2/models/tiny/infer", body, headers)
    assert status == 429
    assert response_headers["Retry-After"] == "2"
    assert "priority level 10 is 9 or lower" in document["error"]


def test_tritonclients_priority_argument_keeps_tritons_meaning(guarded_server, tiny_inputs, token):
    client, good = _client(guarded_server), {"Authorization": f"Bearer {token}"}
    assert client.infer("tiny", _inputs(tiny_inputs()), headers=good, priority=1).as_numpy("y").shape == (2, 3)
    assert client.infer("tiny", _inputs(tiny_inputs()), headers=good).as_numpy("y").shape == (2, 3)  # 0: default
    status, message = _error(client.infer, "tiny", _inputs(tiny_inputs()), headers=good, priority=9)
    assert status == "429" and "priority level 9 is 9 or lower" in message


def test_repository_index_lists_the_model_served(tiny_server):
    status, _, index = _request(tiny_server, "POST", "/v2/repository/index", body=b"{}")
    assert status == 200
    assert [entry["name"] for entry in index] == ["tiny"] and all(entry["state"] == "READY" for entry in index)

"""`hwfit serve PLAN.yaml` from the command line, as a user runs it: a plan file with an EMULATED pool,
explicit ports, --host, --token and --cache-mb; the token is enforced on HTTP and gRPC, a repeated
request is answered from the cache, and Ctrl-C (SIGINT) drains and exits cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from tests.serve.emulation import EmulatedPool, emulated_plan, write_small_onnx_model

TOKEN = "cli-test-token"
READY_S = 60.0  # the whole start-up (imports, the pool's worker processes) must fit in this


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _hwfit(*args: str) -> list[str]:
    return [sys.executable, "-c", "from hwfit.cli import main; main()", *args]


def _wait_for_line(process: subprocess.Popen, marker: str, timeout_s: float) -> str:
    """The server's output up to the line holding `marker`; fails if it exits or takes too long."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if marker in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    assert found.is_set(), f"no '{marker}' within {timeout_s:g} s (exit code {process.poll()}):\n{''.join(lines)}"
    return "".join(lines)


def _post(url: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.timeout(120)
def test_serve_a_plan_file_with_host_token_and_cache_flags_then_ctrl_c(tmp_path):
    pool = EmulatedPool("emu", {1: 5.0, 8: 10.0}, replicas=1, max_batch_size=8, max_queue_delay_ms=1.0)
    model = write_small_onnx_model(tmp_path / "small.onnx")
    plan_path = emulated_plan("small", str(model), [pool], latency_p99_ms=1000.0).save(tmp_path / "plan.yaml")
    http_port, grpc_port = _free_port(), _free_port()
    server = subprocess.Popen(
        _hwfit(
            "serve",
            str(plan_path),
            "--http-port",
            str(http_port),
            "--grpc-port",
            str(grpc_port),
            "--host",
            "127.0.0.1",
            "--token",
            TOKEN,
            "--cache-mb",
            "8",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        output = _wait_for_line(server, "Ctrl-C stops accepting", READY_S)
        url = f"http://127.0.0.1:{http_port}"
        assert f"HTTP {url}" in output and f"gRPC 127.0.0.1:{grpc_port}" in output, output
        assert re.search(r"emu .*EMULATED", output), output  # the pool table labels the emulated device

        infer_url = f"{url}/v2/models/small/infer"
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
        # the token: refused without it (and with a wrong one), answered with it; health stays open
        status, answer = _post(infer_url, body)
        assert status == 401 and "bearer token" in answer["error"]
        assert _post(infer_url, body, token="wrong")[0] == 401
        assert _get(f"{url}/v2/health/ready")[0] == 200
        assert _get(f"{url}/metrics")[0] == 401
        status, first = _post(infer_url, body, token=TOKEN)
        assert status == 200 and first["parameters"]["pool"] == "emu"
        assert first["outputs"][0]["shape"] == [1, 2]  # an EMULATED device answers zeros of the model's shape
        # --cache-mb: the same inputs again come from the cache, and /metrics counts the hit
        status, second = _post(infer_url, body, token=TOKEN)
        assert status == 200 and second["parameters"]["pool"] == "cache"
        assert second["outputs"] == first["outputs"]
        status, metrics = _get(f"{url}/metrics", token=TOKEN)
        assert status == 200 and re.search(r'^hwfit_cache_hits_total\{model="small"\} 1\.0$', metrics, re.M), metrics

        # the same token on the gRPC port
        client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        tensor = triton_grpc.InferInput("x", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.array([[0, 0, 0, 1]], dtype=np.float32))
        with pytest.raises(InferenceServerException, match="(?i)unauthenticated|bearer token"):
            client.infer("small", [tensor])
        result = client.infer("small", [tensor], headers={"authorization": f"Bearer {TOKEN}"})
        assert result.as_numpy("y").shape == (1, 2)
        assert result.get_response().parameters["pool"].string_param == "emu"
        client.close()

        server.send_signal(signal.SIGINT)
        rest, _ = server.communicate(timeout=60)
        assert server.returncode == 0, rest
        assert "stopped: every accepted request was answered" in rest
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

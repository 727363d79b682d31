"""`hwfit top`: quantiles and rates from two scrapes; and end to end, `hwfit serve MODEL` on its
default plan answering over HTTP, `hwfit top --once` reading it, Ctrl-C draining it."""

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from hwfit.cli.top_view import histogram_quantile, metrics_url, parse_metrics, snapshot
from tests.serve.emulation import write_small_onnx_model

BEFORE = """
hwfit_requests_total{model="m",pool="gpu",outcome="success"} 100
hwfit_requests_total{model="m",pool="gpu",outcome="shed"} 1
hwfit_requests_total{model="m",pool="",outcome="rejected"} 5
hwfit_request_duration_seconds_bucket{model="m",pool="gpu",le="0.01"} 50
hwfit_request_duration_seconds_bucket{model="m",pool="gpu",le="0.02"} 100
hwfit_request_duration_seconds_bucket{model="m",pool="gpu",le="+Inf"} 100
hwfit_batch_size_sum{model="m",pool="gpu"} 100
hwfit_batch_size_count{model="m",pool="gpu"} 50
"""
AFTER = """
hwfit_requests_total{model="m",pool="gpu",outcome="success"} 300
hwfit_requests_total{model="m",pool="gpu",outcome="shed"} 4
hwfit_requests_total{model="m",pool="",outcome="rejected"} 9
hwfit_request_duration_seconds_bucket{model="m",pool="gpu",le="0.01"} 100
hwfit_request_duration_seconds_bucket{model="m",pool="gpu",le="0.02"} 250
hwfit_request_duration_seconds_bucket{model="m",pool="gpu",le="+Inf"} 300
hwfit_batch_size_sum{model="m",pool="gpu"} 900
hwfit_batch_size_count{model="m",pool="gpu"} 100
hwfit_queue_depth{model="m",pool="gpu"} 7
hwfit_pool_up{model="m",pool="gpu"} 1
hwfit_pool_info{model="m",pool="gpu",role="primary",variant="v",device="cuda:0",emulated="false"} 1
hwfit_device_utilization_ratio{device="cuda:0"} 0.5
"""


@pytest.mark.timeout(10)
def test_histogram_quantile_interpolates_like_prometheus():
    buckets = [(0.01, 50.0), (0.02, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.01)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.015)
    assert histogram_quantile(0.99, [(0.01, 0.0), (float("inf"), 10.0)]) == pytest.approx(0.01)
    assert histogram_quantile(0.5, [(0.01, 0.0)]) is None


@pytest.mark.timeout(10)
def test_a_snapshot_is_the_window_between_two_scrapes():
    snap = snapshot(parse_metrics(BEFORE, 10.0), parse_metrics(AFTER, 12.0))
    (gpu,) = snap.pools
    assert gpu.pool == "gpu" and gpu.role == "primary" and gpu.up and not gpu.emulated
    assert gpu.requests_per_s == pytest.approx(100.0)  # 200 in 2 s
    assert gpu.p50_ms == pytest.approx(15.0)  # the window's 200: 50 under 10 ms, 100 in 10-20 ms, 50 above
    assert gpu.p99_ms == pytest.approx(20.0)  # in the +Inf bucket: its lower edge, as Prometheus does
    assert gpu.mean_batch == pytest.approx(16.0)  # 800 samples / 50 batches in the window
    assert gpu.queue_depth == 7 and gpu.shed == 3
    assert snap.rejected_at_admission == 4
    assert [(d.device, d.utilization) for d in snap.devices] == [("cuda:0", 0.5)]
    assert metrics_url("127.0.0.1:8000") == "http://127.0.0.1:8000/metrics"


def _hwfit(*args):
    return [sys.executable, "-c", "from hwfit.cli import main; main()", *args]


@pytest.mark.timeout(120)
def test_serve_a_model_on_the_default_plan_watch_it_with_top_and_drain_on_ctrl_c(tmp_path):
    model = write_small_onnx_model(tmp_path / "small.onnx")
    server = subprocess.Popen(
        _hwfit("serve", str(model), "--http-port", "0", "--grpc-port", "0", "--startup-budget-s", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        lines = []
        for line in server.stdout:
            lines.append(line)
            if "Ctrl-C stops accepting" in line:
                break
        output = "".join(lines)
        assert "default plan:" in output and "start-up budget" in output and "start-up search" in output, output
        url = re.search(r"HTTP (http://127\.0\.0\.1:\d+)", output).group(1)
        body = json.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [1, 2, 3, 4, 0, 0, 0, 1]}]}
        ).encode()
        for _ in range(5):
            reply = urllib.request.urlopen(
                urllib.request.Request(f"{url}/v2/models/small/infer", body, {"Content-Type": "application/json"}),
                timeout=30,
            )
            answer = json.loads(reply.read())
        assert answer["outputs"][0]["shape"] == [2, 2]
        assert answer["outputs"][0]["data"] == pytest.approx([5.0, 6.25, 0.75, 0.875])  # relu(x @ W), W = arange(8) / 8
        top = subprocess.run(
            _hwfit("top", url, "--once", "--interval", "0.2"),
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert top.returncode == 0, top.stderr
        assert "cpu-ort-fp32" in top.stdout and "primary" in top.stdout and "up" in top.stdout
        assert "devices" in top.stdout and "cpu" in top.stdout
        server.send_signal(signal.SIGINT)
        rest, _ = server.communicate(timeout=60)
        assert server.returncode == 0, rest
        assert "stopped: every accepted request was answered" in rest
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.timeout(30)
def test_top_against_no_server_says_what_to_check():
    result = subprocess.run(_hwfit("top", "http://127.0.0.1:9", "--once"), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "cannot read metrics from http://127.0.0.1:9/metrics" in result.stderr
    assert "is `hwfit serve` running there" in result.stderr

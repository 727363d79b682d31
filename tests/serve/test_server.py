"""Running the server: loopback and free ports by default, graceful drain (ready turns false, new
requests get 503/UNAVAILABLE, the accepted one is answered, then the listeners close), a taken
port is a clear error, and SIGTERM drains and exits when run_server owns the main thread."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from hwfit.core import Variant
from hwfit.serve.frontend.server import ServerConfig, start_in_thread
from hwfit.serve.scheduler.direct import DirectDispatcher

pytestmark = pytest.mark.timeout(60)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _body(inputs) -> bytes:
    return json.dumps(
        {
            "inputs": [
                {
                    "name": n,
                    "datatype": "FP32" if a.dtype.kind == "f" else "INT64",
                    "shape": list(a.shape),
                    "data": a.reshape(-1).tolist(),
                }
                for n, a in inputs.items()
            ]
        }
    ).encode()


def test_defaults_bind_loopback_and_free_ports_are_reported(tiny_server):
    assert ServerConfig().host == "127.0.0.1"
    host, http_port = tiny_server.http_address.rsplit(":", 1)
    grpc_host, grpc_port = tiny_server.grpc_url.rsplit(":", 1)
    assert host == grpc_host == "127.0.0.1"
    assert int(http_port) > 0 and int(grpc_port) > 0 and http_port != grpc_port
    assert _get(tiny_server.http_url + "/v2/health/live") == 200


def test_stop_drains_the_accepted_request_and_refuses_new_ones(tiny_model, tiny_inputs):
    slow = Variant("emulated", "emulated", "fp32", 1, knobs=(("base_ms", "1500"), ("per_sample_ms", "0")))
    server = start_in_thread(DirectDispatcher(tiny_model, slow, max_batch_size=4))
    url = server.http_url
    answers: list = []
    in_flight = threading.Thread(
        target=lambda: answers.append(_post(url + "/v2/models/tiny/infer", _body(tiny_inputs(1))))
    )
    in_flight.start()
    time.sleep(0.3)  # the request is on the runner now
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    time.sleep(0.3)  # draining: the dispatcher waits for the accepted request
    assert _get(url + "/v2/health/ready") == 503
    assert _get(url + "/v2/health/live") == 200
    status, document = _post(url + "/v2/models/tiny/infer", _body(tiny_inputs(1)))
    assert status == 503 and "shutting down" in document["error"]
    in_flight.join(20)
    stopper.join(20)
    assert answers and answers[0][0] == 200  # the accepted request was answered
    with pytest.raises(urllib.error.URLError):  # and then the listener closed
        urllib.request.urlopen(url + "/v2/health/live", timeout=5)


def test_a_taken_port_is_a_clear_error(tiny_model):
    dispatcher = DirectDispatcher(tiny_model, Variant("ort", "cpu", "fp32", 1, threads=1), max_batch_size=4)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"cannot serve HTTP on 127.0.0.1:{port}"):
            start_in_thread(dispatcher, ServerConfig(http_port=port, grpc_port=0))
    assert not dispatcher.ready()  # started, then stopped again when the bind failed


SERVE_SCRIPT = """
import asyncio, sys
from hwfit.core import Variant
from hwfit.models import load_model
from hwfit.serve.scheduler.direct import DirectDispatcher
from hwfit.serve.frontend.server import ServerConfig, run_server

dispatcher = DirectDispatcher(load_model(sys.argv[1]), Variant("ort", "cpu", "fp32", 1, threads=1), max_batch_size=4)
config = ServerConfig(http_port=0, grpc_port=0, drain_s=2.0)
asyncio.run(run_server(dispatcher, config, on_started=lambda a: print("STARTED", a.http_url, flush=True)))
print("STOPPED", flush=True)
"""


def test_sigterm_drains_and_exits(tiny_model):
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, str(tiny_model.onnx_path())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("STARTED"), line + process.stderr.read()
        url = line.split()[1]
        assert _get(url + "/v2/health/ready") == 200
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "STOPPED" in out


def test_run_server_sets_started_and_stops_on_the_event(tiny_model):
    import asyncio

    import aiohttp

    from hwfit.serve.frontend.server import run_server

    dispatcher = DirectDispatcher(tiny_model, Variant("ort", "cpu", "fp32", 1, threads=1), max_batch_size=4)
    bound = []

    async def scenario() -> int:
        started, stop = asyncio.Event(), asyncio.Event()
        config = ServerConfig(http_port=0, grpc_port=0, drain_s=1.0)
        task = asyncio.create_task(run_server(dispatcher, config, started, stop, on_started=bound.append))
        await asyncio.wait_for(started.wait(), 30)
        async with aiohttp.ClientSession() as session, session.get(bound[0].http_url + "/v2/health/ready") as response:
            status = response.status
        stop.set()
        await asyncio.wait_for(task, 30)
        return status

    assert asyncio.run(scenario()) == 200
    assert not dispatcher.ready()  # run_server stopped it


@pytest.mark.timeout(60)
def test_freezing_the_startup_heap_leaves_a_full_collection_only_what_serving_allocates():
    # in a child process: the freeze is process-wide
    script = (
        "import gc, time\n"
        "from hwfit.serve.frontend.server import freeze_startup_heap\n"
        "import hwfit.serve.frontend.http, hwfit.serve.frontend.grpc_server\n"
        "before = len(gc.get_objects())\n"
        "freeze_startup_heap()\n"
        "garbage = [[i] for i in range(1000)]\n"
        "print(before, gc.get_freeze_count(), len(gc.get_objects()))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    before, frozen, tracked = (int(v) for v in done.stdout.split())
    assert frozen > 0.9 * before  # start-up's objects are out of the collector's way ...
    assert tracked < 0.2 * before  # ... and what it still tracks is what came after

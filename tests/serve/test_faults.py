"""Faults: a killed worker's request is answered by another pool and the worker restarts; a hanging
worker is cut by the watchdog; a device whose workers keep failing is marked down and the plan's
fallback chain takes over until it comes back. Real ONNX Runtime workers on a small model."""

import os
import signal
import time

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hwfit.plan import parse_plan
from hwfit.serve.api import InferRequest
from hwfit.serve.scheduler.dispatcher import DispatcherConfig, PlanDispatcher
from hwfit.serve.scheduler.inprocess import InProcess
from hwfit.serve.scheduler.pools import HealthPolicy, PoolConfig
from hwfit.serve.scheduler.workers import WatchdogPolicy
from tests.serve.emulation import write_small_onnx_model

WATCHDOG = WatchdogPolicy(
    timeout_multiple=5.0, timeout_margin_s=1.0, start_timeout_s=60.0, backoff_initial_s=0.1, backoff_max_s=0.5
)
HEALTH = HealthPolicy(failures_to_mark_down=3, failure_window_s=60.0, down_for_s=2.0)


def ort_pool(name, role, service_ms):
    return {
        "name": name,
        "role": role,
        "variant": "ort/cpu/fp32/b4/t1",
        "backend": "ort",
        "device": "cpu",
        "precision": "fp32",
        "threads": 1,
        "max_batch_size": 4,
        "max_queue_delay_ms": 1.0,
        "service_ms": service_ms,
        "expected": {"rate_rps": 1, "capacity_rps": 100},
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = write_small_onnx_model(tmp_path_factory.mktemp("model") / "small.onnx")
    plan = parse_plan(
        {
            "model": {"name": "small", "source": str(path), "hash": "x"},
            "slo": {
                "latency_p99_ms": 10000,
                "throughput_rps": 1,
                "objective": "latency",
                "devices": {"cpu": {"count": 1}},
            },
            "feasible": True,
            "pools": [ort_pool("main", "primary", {1: 2.0, 4: 4.0}), ort_pool("spare", "fallback", {1: 5.0, 4: 10.0})],
            "fallback": ["main", "spare"],
            "search": {"grid_size": 1, "measured": 1, "reused": 0},
        }
    )
    config = DispatcherConfig(pool=PoolConfig(watchdog=WATCHDOG, health=HEALTH))
    running = InProcess(PlanDispatcher(plan, config=config))
    yield running
    running.stop()


def request():
    return InferRequest("small", {"x": np.ones((1, 4), np.float32)})


def main_pid(server):
    return server.run_on_loop(lambda: server.dispatcher.pools["main"].slots[0].worker.pid)


def main_ready(server):
    return server.run_on_loop(lambda: server.dispatcher.pools["main"].ready_replicas == 1)


def wait_until(condition, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def counter(server, name, **labels):
    text = server.dispatcher.metrics_text()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and set(labels.items()) <= set(s.labels.items())
    )


@pytest.mark.timeout(60)
def test_a_killed_workers_request_is_answered_by_another_pool_and_the_worker_restarts(server):
    assert wait_until(lambda: main_ready(server))
    assert server.infer(request()).pool == "main"
    before = main_pid(server)
    retried_before = counter(server, "hwfit_requests_total", pool="main", outcome="retried")
    os.kill(before, signal.SIGSTOP)  # hold the batch in the worker...
    future = server.infer_async(request())
    time.sleep(0.2)
    os.kill(before, signal.SIGKILL)  # ...and kill it mid-batch
    response = future.result(timeout=10)
    assert response.pool == "spare"
    assert counter(server, "hwfit_requests_total", pool="main", outcome="retried") == retried_before + 1
    assert counter(server, "hwfit_worker_failures_total", pool="main", kind="died") >= 1
    assert wait_until(lambda: main_ready(server)) and main_pid(server) != before
    assert server.infer(request()).pool == "main"  # back in rotation
    assert counter(server, "hwfit_worker_restarts_total", pool="main") >= 1


@pytest.mark.timeout(60)
def test_a_hanging_worker_is_cut_by_the_watchdog_and_its_request_answered_elsewhere(server):
    assert wait_until(lambda: main_ready(server))
    hung = main_pid(server)
    os.kill(hung, signal.SIGSTOP)
    started = time.perf_counter()
    response = server.infer(request(), timeout_s=20)
    waited = time.perf_counter() - started
    assert response.pool == "spare"
    assert 1.0 <= waited < 5.0  # 5 x 2 ms predicted + 1 s margin, then the retry
    assert counter(server, "hwfit_worker_failures_total", pool="main", kind="hung") >= 1
    assert wait_until(lambda: main_ready(server)) and main_pid(server) != hung


@pytest.mark.timeout(90)
def test_a_device_whose_workers_keep_failing_is_marked_down_until_it_recovers(server):
    def pool_up():
        return server.run_on_loop(lambda: server.dispatcher.pools["main"].up)

    for _ in range(HEALTH.failures_to_mark_down):
        assert wait_until(lambda: main_ready(server) or not pool_up())
        if not pool_up():
            break
        os.kill(main_pid(server), signal.SIGKILL)
        assert wait_until(lambda: not main_ready(server))
    assert wait_until(lambda: not pool_up(), timeout_s=5)
    reason = server.run_on_loop(lambda: server.dispatcher.pools["main"].down_reason)
    assert "worker failures" in reason and "marked down" in reason
    assert server.dispatcher.ready()  # the fallback chain serves
    assert {server.infer(request()).pool for _ in range(3)} == {"spare"}
    assert counter(server, "hwfit_pool_up", pool="main") == 0
    assert wait_until(lambda: pool_up() and main_ready(server), timeout_s=30)  # after the down period
    assert server.infer(request()).pool == "main"

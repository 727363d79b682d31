"""Metrics: one registry per dispatcher, the hwfit_* families, and the Triton-named twins with
Triton's exact names and types."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hwfit.serve.scheduler.metrics import ServeMetrics


def families(text):
    return {family.name: family for family in text_string_to_metric_families(text)}


def record_some(metrics):
    metrics.describe_pool("gpu", "primary", "ort/cuda:0/fp16/b8", "cuda:0")
    metrics.describe_pool("sim", "overflow", "emulated/emulated:sim/fp32/b8", "emulated:sim")
    metrics.request_succeeded("gpu", total_s=0.030, queue_s=0.010, formation_s=0.002, compute_s=0.018)
    metrics.request_succeeded("gpu", total_s=0.050, queue_s=0.020, formation_s=0.002, compute_s=0.028)
    metrics.batch_executed("gpu", samples=2, padded={"input_ids": 7}, oom_splits=1, service_ratio=1.25)
    metrics.request_refused("", "rejected", "rejected")
    metrics.request_refused("gpu", "shed", "shed")
    metrics.request_refused("gpu", "failed", "backend")
    metrics.queue_changed("gpu", requests=3, samples=5)


@pytest.mark.timeout(10)
def test_two_dispatchers_keep_separate_registries():
    first, second = ServeMetrics("a"), ServeMetrics("b")
    first.request_succeeded("p", 0.01, 0.0, 0.0, 0.01)
    assert 'hwfit_requests_total{model="a",outcome="success",pool="p"} 1.0' in first.text()
    assert 'model="a"' not in second.text()


@pytest.mark.timeout(10)
def test_hwfit_families_carry_pools_outcomes_and_the_latency_split():
    metrics = ServeMetrics("bert", devices=("cpu",))
    record_some(metrics)
    text = metrics.text()
    found = families(text)
    requests = {
        (s.labels["pool"], s.labels["outcome"]): s.value
        for s in found["hwfit_requests"].samples
        if s.name == "hwfit_requests_total"
    }
    assert requests[("gpu", "success")] == 2 and requests[("", "rejected")] == 1
    assert requests[("gpu", "shed")] == 1 and requests[("gpu", "failed")] == 1 and requests[("sim", "success")] == 0
    for name, expected_sum in (
        ("hwfit_request_queue_seconds", 0.030),
        ("hwfit_request_batch_formation_seconds", 0.004),
        ("hwfit_request_compute_seconds", 0.046),
        ("hwfit_request_duration_seconds", 0.080),
    ):
        sums = [s.value for s in found[name].samples if s.name == name + "_sum"]
        assert sums == [pytest.approx(expected_sum)], name
    assert 'hwfit_padding_elements_total{input="input_ids",model="bert",pool="gpu"} 7.0' in text
    assert 'hwfit_oom_splits_total{model="bert",pool="gpu"} 1.0' in text
    assert 'hwfit_queue_depth{model="bert",pool="gpu"} 3.0' in text
    assert 'hwfit_pool_service_time_ratio{model="bert",pool="gpu"} 1.25' in text
    assert 'emulated="true"' in text and 'pool="sim"' in text
    assert [s.labels["device"] for s in found["hwfit_device_utilization_ratio"].samples] == ["cpu"]
    assert found["hwfit_device_memory_used_bytes"].samples[0].value > 0


@pytest.mark.timeout(10)
def test_triton_twins_have_triton_names_types_and_values():
    metrics = ServeMetrics("bert", devices=("cpu",))
    record_some(metrics)
    metrics.pending_requests = 4
    text = metrics.text()
    assert "# TYPE nv_inference_request_success counter\n" in text  # no _total: Triton's own names
    assert 'nv_inference_request_success{model="bert",version="1"} 2.0' in text
    assert 'nv_inference_request_failure{model="bert",version="1",reason="REJECTED"} 2.0' in text
    assert 'nv_inference_request_failure{model="bert",version="1",reason="BACKEND"} 1.0' in text
    assert 'nv_inference_count{model="bert",version="1"} 2.0' in text
    assert 'nv_inference_exec_count{model="bert",version="1"} 1.0' in text
    assert 'nv_inference_queue_duration_us{model="bert",version="1"} 34000.0' in text
    assert 'nv_inference_compute_infer_duration_us{model="bert",version="1"} 46000.0' in text
    assert 'nv_inference_pending_request_count{model="bert",version="1"} 4.0' in text
    assert "nv_cpu_utilization " in text and "nv_gpu_utilization" not in text  # no GPU sampled here
    families(text)  # the whole exposition parses

"""A small CPU plan and a store holding the points it rests on, for the forecast tests."""

from __future__ import annotations

from hwfit.core import Variant
from hwfit.plan import Plan, parse_plan
from hwfit.store import Environment, LatencyStats, Measurement, ResultsStore

CURVE = {1: 10.0, 8: 40.0}  # ms per batch: capacity 200 req/s at batch 8 per replica
MODEL_HASH = "forecast-test-model"


def pool(name="cpu-ort-fp32", role="primary", curve=None, max_batch=8, delay=2.0, threads=1, devices=1, rate=50.0):
    curve = dict(curve or CURVE)
    return {
        "name": name,
        "role": role,
        "variant": f"ort/cpu/fp32/b{max_batch}/t{threads}",
        "backend": "ort",
        "device": "cpu",
        "precision": "fp32",
        "threads": threads,
        "devices": devices,
        "max_batch_size": max_batch,
        "max_queue_delay_ms": delay,
        "service_ms": curve,
        "expected": {
            "rate_rps": rate,
            "capacity_rps": max_batch * 1000.0 / curve[max(curve)],
            "j_per_inference": 0.5,
            "energy_how": "estimated",
            "cost_per_million": 2.0,
        },
        "measured_from": [f"ort/cpu/fp32/b{b}/t{threads}" for b in curve],
    }


def plan(pools=None, p99_ms=100.0, headroom=0.7, fallback=None) -> Plan:
    pools = pools or [pool()]
    return parse_plan(
        {
            "model": {"name": "m", "source": "m.onnx", "hash": MODEL_HASH},
            "slo": {
                "latency_p99_ms": p99_ms,
                "throughput_rps": 50,
                "objective": "cost",
                "devices": {"cpu": {"count": 1}},
                "headroom": headroom,
                "price_per_kwh": 0.1,
            },
            "feasible": True,
            "pools": pools,
            "fallback": fallback or [],
            "search": {"grid_size": 0, "measured": 0, "reused": 0},
        }
    )


def environment() -> Environment:
    return Environment(
        hwfit_version="0.1.0",
        hwfit_commit=None,
        python="3.11",
        numpy="2",
        onnxruntime="1.20",
        torch=None,
        openvino=None,
        cuda=None,
        nvidia_driver=None,
        cpu_model="Test CPU",
        gpu_names=(),
        hostname_hash="0" * 12,
    )


def point(batch: int, p50_ms: float, p99_ms: float, threads: int = 1, **compute) -> Measurement:
    variant = Variant("ort", "cpu", "fp32", batch, threads)
    latency = LatencyStats(50, p50_ms, p50_ms, p99_ms, p99_ms, p50_ms, 0.1, p50_ms, p99_ms, p50_ms, p50_ms)
    return Measurement(
        variant.key, variant.to_dict(), "ok", latency=latency, samples_per_s=batch * 1000 / p50_ms, **compute
    )


def store_with_points(path, flops_per_sample=1e9, intensity_at=None, peak=1e12, bandwidth=5e10) -> ResultsStore:
    """A store whose points give the reference roofline: `peak` FLOP/s (measured ceiling), `bandwidth` B/s."""
    from hwfit.store import open_store

    store = open_store(path)
    run = store.start_run("m", "m.onnx", MODEL_HASH, "sweep", {}, environment())
    intensity_at = intensity_at or {1: 10.0, 8: 80.0}  # FLOP/byte per batch
    for batch, ms in CURVE.items():
        compute = {}
        if flops_per_sample:  # a model without a FLOP count leaves these empty, as the profiler does
            achieved = flops_per_sample * batch * 1000.0 / ms
            compute = dict(
                flops_per_sample=flops_per_sample,
                achieved_flops_per_s=achieved,
                mfu_vs_measured=achieved / peak,
                arithmetic_intensity=intensity_at[batch],
                details={"roofline_ridge_flops_per_byte": peak / bandwidth},
            )
        store.record(run.id, point(batch, ms, ms * 1.2, **compute))
    store.finish_run(run.id, "complete")
    return store

"""A plan that serves one given configuration (the audit's tests and bench/audit_cpu.py serve a chosen,
sometimes deliberately wasteful, configuration rather than the one `hwfit plan` would choose)."""

from __future__ import annotations

from pathlib import Path

from hwfit.core import Variant
from hwfit.plan import Plan, parse_plan


def one_pool_plan(
    model_name: str,
    model_source: str,
    model_hash: str,
    variant: Variant,
    replicas: int,
    service_ms: dict[int, float],
    max_queue_delay_ms: float = 2.0,
    latency_p99_ms: float = 2000.0,
) -> Plan:
    """One primary pool of `variant` (its batch size is the max batch) x `replicas`, with the measured
    service times the router predicts from."""
    capacity = replicas * max(b / (ms / 1000.0) for b, ms in service_ms.items())
    expected = {
        "rate_rps": 0.5 * capacity,
        "capacity_rps": capacity,
        "p99_ms": None,
        "utilization": 0.5,
        "how": "given",
    }
    pool = {
        "name": f"{variant.device}-{variant.backend}-{variant.precision}",
        "role": "primary",
        "variant": variant.without_replicas().key,
        "backend": variant.backend,
        "device": variant.device,
        "precision": variant.precision,
        "threads": variant.threads,
        "replicas_per_device": replicas,
        "max_batch_size": variant.batch_size,
        "max_queue_delay_ms": max_queue_delay_ms,
        "service_ms": service_ms,
        "expected": expected,
        "measured_from": [variant.key],
    }
    return parse_plan(
        {
            "model": {"name": model_name, "source": model_source, "hash": model_hash},
            "slo": {
                "latency_p99_ms": latency_p99_ms,
                "throughput_rps": expected["rate_rps"],
                "objective": "throughput",
                "devices": {variant.device: {"count": 1}},
            },
            "feasible": True,
            "pools": [pool],
            "fallback": [pool["name"]],
            "expected": expected,
            "answer": f"one given pool: {variant.key} x {replicas}",
            "search": {"grid_size": 1, "measured": 0, "reused": 0, "method": "given"},
        },
        source="<one-pool plan>",
    )


def write_one_pool_plan(path: Path, plan: Plan) -> Path:
    path.write_text(plan.to_yaml())
    return path

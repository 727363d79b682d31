"""The plan `hwfit serve MODEL` uses when given a model instead of a plan: the model on ONNX Runtime,
fp32, on the CPU, one replica using every usable core, max batch 8, 2 ms queue delay. Its service
times are measured at startup (a few runs at batch 1 and 8), since no profile backs them."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from hwfit.backends import load_variant
from hwfit.core import Variant
from hwfit.models import Model
from hwfit.plan import Plan, parse_plan
from hwfit.simulate import approximate_p99_ms, capacity_rps

DEFAULT_MAX_BATCH = 8
DEFAULT_QUEUE_DELAY_MS = 2.0
DEFAULT_LATENCY_P99_MS = 1000.0  # requests without a timeout are admitted if predicted within this
TIMED_RUNS = 5
HEADROOM = 0.7


@dataclass(frozen=True)
class DefaultPlan:
    plan: Plan
    description: str  # what was chosen and how the service times were obtained


def default_plan(model: Model) -> DefaultPlan:
    variant = Variant("ort", "cpu", "fp32", DEFAULT_MAX_BATCH)
    threads = variant.intra_op_threads
    variant = Variant("ort", "cpu", "fp32", DEFAULT_MAX_BATCH, threads)
    service_ms = measure_service_ms(model, variant, (1, DEFAULT_MAX_BATCH))
    capacity = capacity_rps(service_ms, 1, DEFAULT_MAX_BATCH)
    rate = HEADROOM * capacity
    p99_ms = approximate_p99_ms(service_ms, 1, DEFAULT_MAX_BATCH, DEFAULT_QUEUE_DELAY_MS, rate)
    how = f"measured at startup: median of {TIMED_RUNS} runs per batch size"
    pool = {
        "name": "cpu-ort-fp32",
        "role": "primary",
        "variant": variant.key,
        "backend": "ort",
        "device": "cpu",
        "precision": "fp32",
        "threads": threads,
        "max_batch_size": DEFAULT_MAX_BATCH,
        "max_queue_delay_ms": DEFAULT_QUEUE_DELAY_MS,
        "service_ms": service_ms,
        "expected": {
            "rate_rps": rate,
            "capacity_rps": capacity,
            "p99_ms": p99_ms,
            "utilization": HEADROOM,
            "how": f"approximation (queueing model) from service times {how}",
        },
        "measured_from": [variant.key],
    }
    plan = parse_plan(
        {
            "model": {"name": model.name, "source": model.source, "hash": model.content_hash},
            "slo": {
                "latency_p99_ms": DEFAULT_LATENCY_P99_MS,
                "throughput_rps": rate,
                "objective": "latency",
                "devices": {"cpu": {"count": 1}},
            },
            "feasible": True,
            "pools": [pool],
            "fallback": [pool["name"]],
            "expected": pool["expected"],
            "answer": f"default plan: {model.name} on ONNX Runtime fp32 CPU, 1 replica x {threads} threads, "
            f"max batch {DEFAULT_MAX_BATCH}, {DEFAULT_QUEUE_DELAY_MS:g} ms queue delay",
            "assumptions": [
                "no plan was given: defaults, not a search against an SLO",
                f"requests without a timeout are admitted if predicted to finish within {DEFAULT_LATENCY_P99_MS:g} ms",
            ],
            "search": {"grid_size": 1, "measured": 1, "reused": 0, "method": "default (no search)"},
        },
        source="<default plan>",
    )
    timings = ", ".join(f"b{b} {ms:.2f} ms" for b, ms in service_ms.items())
    description = (
        f"{plan.answer}; service times {how} ({timings}); capacity ~{capacity:.0f} req/s; "
        f"requests without a timeout are admitted if predicted within {DEFAULT_LATENCY_P99_MS:g} ms. "
        f"Run `hwfit profile` and serve a plan for a configuration chosen against your SLO."
    )
    return DefaultPlan(plan, description)


def measure_service_ms(model: Model, variant: Variant, batch_sizes: tuple[int, ...]) -> dict[int, float]:
    """Median run time per batch size on a runner loaded in this process (after one warm-up run)."""
    service_ms = {}
    with load_variant(model, variant) as runner:
        for batch in batch_sizes:
            inputs = model.synthetic_inputs(batch)
            runner.run_unchecked(inputs)
            times = []
            for _ in range(TIMED_RUNS):
                started = time.perf_counter()
                runner.run_unchecked(inputs)
                times.append((time.perf_counter() - started) * 1000.0)
            service_ms[batch] = round(statistics.median(times), 3)
    return service_ms

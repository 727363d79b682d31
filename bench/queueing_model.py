"""How close the planner's closed-form p99 (hwfit.plan.approximate_pool) is to its discrete-event
simulation of a Triton-style dynamic batcher (hwfit.plan.simulate_pool), over a grid of replicas,
max batch, max queue delay and load. Both run here, in this process, on the same curve.

    python bench/queueing_model.py [--requests 100000]

Prints one row per configuration and the median and worst relative error.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from itertools import product
from pathlib import Path

from rich.console import Console
from rich.table import Table

try:
    import hwfit  # noqa: F401 - only checks that hwfit is installed; else the checkout is put on sys.path
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwfit.simulate import ServiceCurve, approximate_pool, capacity_rps, simulate_pool

CURVE_MS = {1: 2.5, 2: 3.0, 4: 4.0, 8: 6.0, 16: 10.0}  # s(b) = 2 + 0.5 b, the shape of a small encoder
REPLICAS = (1, 2, 4)
MAX_BATCH = (1, 4, 8, 16)
QUEUE_DELAY_MS = (0.0, 2.0, 5.0)
LOADS = (0.3, 0.6, 0.85)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000, help="simulated requests per configuration")
    args = parser.parse_args()
    curve = ServiceCurve.from_points(CURVE_MS)
    table = Table(
        title="p99 latency: closed-form approximation vs discrete-event simulation "
        f"(s(b) = 2 + 0.5·b ms, Poisson arrivals, {args.requests:,} simulated requests each)",
        title_justify="left",
    )
    for column in (
        "replicas",
        "max batch",
        "delay ms",
        "load",
        "rate rps",
        "simulated p99 ms",
        "approx p99 ms",
        "error",
        "mean batch (sim)",
    ):
        table.add_column(column, justify="right")
    errors = []
    started = time.perf_counter()
    for replicas, max_batch, delay_ms, load in product(REPLICAS, MAX_BATCH, QUEUE_DELAY_MS, LOADS):
        rate_rps = load * capacity_rps(curve, replicas, max_batch)
        simulated = simulate_pool(
            curve, replicas, max_batch, delay_ms, rate_rps, duration_s=args.requests / rate_rps, seed=1
        )
        approximated = approximate_pool(curve, replicas, max_batch, delay_ms, rate_rps)
        error = approximated.p99_ms / simulated.p99_ms - 1
        errors.append(abs(error))
        table.add_row(
            str(replicas),
            str(max_batch),
            f"{delay_ms:g}",
            f"{load:.2f}",
            f"{rate_rps:.0f}",
            f"{simulated.p99_ms:.2f}",
            f"{approximated.p99_ms:.2f}",
            f"{error:+.0%}",
            f"{simulated.mean_batch_size:.1f}",
        )
    console = Console(width=max(Console().width, 130))
    console.print(table)
    console.print(
        f"{len(errors)} configurations: median |error| {statistics.median(errors):.1%}, "
        f"worst {max(errors):.1%}; {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

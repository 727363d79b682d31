"""Profile MiniLM on every CPU variant with hwfit, and time the same points with an independent
timer (torch.utils.benchmark's blocked_autorange on the raw library call: ORT session.run,
OpenVINO infer request, the torch module) in the same run; print both medians side by side.

    python bench/profile_minilm.py [--batch 8] [--budget 8] [--model minilm]

Exit status 1 when any median differs by more than 5%.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

try:
    import hwfit  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwfit.backends import load_variant
from hwfit.models import load_model
from hwfit.profile import build_spec, sweep
from hwfit.profile.isolation import run_isolated
from hwfit.profile.quick import reload_model
from hwfit.store import open_store

AGREEMENT = 0.05


class Quiet:
    def planned(self, total_points): pass
    def stage(self, text): print(f"  {text}", file=sys.stderr)
    def point_started(self, variant): print(f"  hwfit: {variant.key}", file=sys.stderr)
    def point_progress(self, variant, message): pass
    def point_finished(self, variant, measurement, reused): pass
    def family_finished(self, family, skipped_points): pass


def raw_call(runner, inputs):
    """The library's own call behind a hwfit runner, so the timer sees no hwfit code."""
    import torch

    if hasattr(runner, "session") and runner.session is not None:
        session, names = runner.session, runner.output_names
        return lambda: session.run(names, inputs)
    if hasattr(runner, "request"):
        request = runner.request
        return lambda: request.infer(inputs)
    module, tensors = runner.module, runner.to_device(inputs)

    def call():
        with torch.inference_mode():
            return module(*tensors)
    return call


def independent_job(source, inputs_spec, variant, seconds, report=None):
    """In a fresh process: hwfit loads the variant, torch.utils.benchmark times the raw call."""
    import torch.utils.benchmark as benchmark

    model = reload_model(source, inputs_spec)
    with load_variant(model, variant) as runner:
        call = raw_call(runner, model.synthetic_inputs(variant.batch_size))
        for _ in range(3):
            call()
        timer = benchmark.Timer(stmt="call()", globals={"call": call}, num_threads=runner_threads(variant))
        result = timer.blocked_autorange(min_run_time=seconds)
    return result.median * 1000.0, len(result.times)


def runner_threads(variant) -> int:
    import os

    return variant.threads or len(os.sched_getaffinity(0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--budget", type=float, default=8.0)
    args = parser.parse_args()

    model = load_model(args.model)
    spec = build_spec({"batch_sizes": [args.batch], "devices": ["cpu"], "budget_s": args.budget})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, open_store(Path(folder) / "bench.db") as store:
        result = sweep(model, spec, store, Quiet())
        measurements = [m for m in store.measurements(result.run_id) if m.status in ("ok", "unstable")]
    rows = []
    for m in measurements:
        from hwfit.backends import Variant

        variant = Variant.parse(m.variant_key)
        print(f"  torch.utils.benchmark: {variant.key}", file=sys.stderr)
        outcome = run_isolated(independent_job, (model.source, model.inputs, variant, args.budget), 600)
        rows.append((m, outcome))
    failed = print_table(args, rows, time.perf_counter() - started)
    return 1 if failed else 0


def print_table(args, rows, seconds: float) -> int:
    table = Table(title=f"{args.model}, batch {args.batch}, CPU: hwfit's median latency vs torch.utils.benchmark "
                  "(blocked_autorange median over the raw library call), each in its own process, same run",
                  title_justify="left")
    for column in ("variant", "hwfit p50 ms", "hwfit ±CI", "hwfit runs", "samples/s", "independent median ms",
                   "its runs", "difference", f"within {AGREEMENT:.0%}"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    failed = 0
    for m, outcome in rows:
        latency = m.latency
        ci = (latency.ci95_high_ms - latency.ci95_low_ms) / 2 / latency.p50_ms
        if not outcome.ok:
            table.add_row(m.variant_key, f"{latency.p50_ms:.2f}", f"{ci:.1%}", str(latency.count),
                          f"{m.samples_per_s:.1f}", f"failed: {outcome.reason}", "", "", "")
            failed += 1
            continue
        median_ms, runs = outcome.value
        difference = latency.p50_ms / median_ms - 1
        agrees = abs(difference) <= AGREEMENT
        failed += not agrees
        table.add_row(m.variant_key, f"{latency.p50_ms:.2f}", f"{ci:.1%}", str(latency.count), f"{m.samples_per_s:.1f}",
                      f"{median_ms:.2f}", str(runs), f"{difference:+.1%}", "[green]yes[/]" if agrees else "[red]no[/]")
    console = Console(width=max(Console().width, 150))
    console.print(table)
    console.print(f"{len(rows)} variants, {failed} outside {AGREEMENT:.0%}; whole bench {seconds:.0f} s")
    return failed


if __name__ == "__main__":
    sys.exit(main())

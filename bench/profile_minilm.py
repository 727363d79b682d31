"""Time MiniLM on every CPU variant with hwfit's timing loop and, on the same loaded model in the same
process, with an independent timer (torch.utils.benchmark's blocked_autorange on the raw library
call: ORT session.run, OpenVINO infer request, the torch module), alternating over rounds; print
both medians side by side. `hwfit profile minilm` gives the full table with every figure.

    python bench/profile_minilm.py [--batch 8] [--budget 3] [--rounds 3] [--model minilm]

Exit status 1 when any median differs by more than 5%.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

try:
    import hwfit  # noqa: F401 - only checks that hwfit is installed; else the checkout is put on sys.path
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwfit.backends import load_variant
from hwfit.core import Variant
from hwfit.models import load_model
from hwfit.profile import StopRule, build_spec, plan_families
from hwfit.profile.isolation import run_isolated
from hwfit.profile.point import timed_runs
from hwfit.profile.quick import reload_model

AGREEMENT = 0.05


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


def compare_job(source, inputs_spec, variant, budget_s, rounds, report=None):
    """In one fresh process: hwfit loads the variant; then, alternating over rounds, hwfit's timing
    loop (the profiler's own `timed_runs`, warm-up and CI stop rule) and torch.utils.benchmark's
    blocked_autorange over the raw library call time the same loaded model on the same inputs."""
    import torch.utils.benchmark as benchmark

    model = reload_model(source, inputs_spec)
    with load_variant(model, variant) as runner:
        inputs = model.synthetic_inputs(variant.batch_size)
        call = raw_call(runner, inputs)
        warm_up_until = time.perf_counter() + 2.0
        while time.perf_counter() < warm_up_until:
            runner.run_unchecked(inputs)
        timer = benchmark.Timer(stmt="call()", globals={"call": call}, num_threads=runner_threads(variant))
        ours, theirs = [], []
        for round_index in range(rounds):
            sides = ("hwfit", "independent") if round_index % 2 == 0 else ("independent", "hwfit")
            for side in sides:
                if side == "hwfit":
                    latencies, _, _ = timed_runs(runner, inputs, StopRule(budget_s=budget_s))
                    ours.append(statistics.median(latencies) * 1000.0)
                else:
                    theirs.append(timer.blocked_autorange(min_run_time=budget_s).median * 1000.0)
    return ours, theirs


def runner_threads(variant) -> int:
    import os

    return variant.threads or len(os.sched_getaffinity(0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per timing, each side, each round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    model = load_model(args.model)
    started = time.perf_counter()
    variants = [
        Variant(t.backend, "cpu", t.precision, args.batch, t.threads, t.knobs)
        for t, reason in plan_families(model, build_spec({"devices": ["cpu"]}))
        if reason is None
    ]
    rows = []
    for variant in variants:
        print(f"  {variant.key}", file=sys.stderr)
        outcome = run_isolated(compare_job, (model.source, model.inputs, variant, args.budget, args.rounds), 900)
        rows.append((variant, outcome))
    failed = print_table(args, rows, time.perf_counter() - started)
    return 1 if failed else 0


def print_table(args, rows, seconds: float) -> int:
    table = Table(
        title=f"{args.model}, batch {args.batch}, CPU: median batch latency by hwfit's timing loop vs "
        "torch.utils.benchmark (blocked_autorange over the raw library call), same loaded model in one "
        f"process per variant, {args.rounds} alternating rounds; figures are the median over rounds",
        title_justify="left",
    )
    for column in (
        "variant",
        "hwfit p50 ms",
        "per round",
        "independent ms",
        "per round",
        "difference",
        f"within {AGREEMENT:.0%}",
    ):
        table.add_column(column, justify="left" if column == "variant" else "right")
    failed = 0
    for variant, outcome in rows:
        if not outcome.ok:
            table.add_row(variant.key, "", "", "", "", f"failed: {outcome.reason}", "")
            failed += 1
            continue
        ours, theirs = outcome.value
        ours_ms, theirs_ms = statistics.median(ours), statistics.median(theirs)
        difference = ours_ms / theirs_ms - 1
        agrees = abs(difference) <= AGREEMENT
        failed += not agrees
        table.add_row(
            variant.key,
            f"{ours_ms:.2f}",
            " ".join(f"{v:.1f}" for v in ours),
            f"{theirs_ms:.2f}",
            " ".join(f"{v:.1f}" for v in theirs),
            f"{difference:+.1%}",
            "[green]yes[/]" if agrees else "[red]no[/]",
        )
    console = Console(width=max(Console().width, 150))
    console.print(table)
    console.print(f"{len(rows)} variants, {failed} outside {AGREEMENT:.0%}; whole bench {seconds:.0f} s")
    return failed


if __name__ == "__main__":
    sys.exit(main())

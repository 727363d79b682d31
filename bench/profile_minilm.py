"""Profile MiniLM on every CPU variant with hwfit's point measurement, and time the same points with
an independent timer (torch.utils.benchmark's blocked_autorange on the raw library call: ORT
session.run, OpenVINO infer request, the torch module) in the same run, alternating over rounds;
print both medians side by side. (`hwfit profile minilm` gives the full table with every figure.)

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
    import hwfit  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwfit.backends import Variant, load_variant
from hwfit.models import load_model
from hwfit.profile import StopRule, WarmupRule, build_spec, plan_families
from hwfit.profile.isolation import run_isolated
from hwfit.profile.point import PointPlan, measure_point
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


def reference_job(source, inputs_spec, inputs, report=None):
    from hwfit.profile import reference_outputs

    return reference_outputs(reload_model(source, inputs_spec), inputs)[0]


def hwfit_job(plan, report=None):
    return measure_point(plan).latency.p50_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per timing, each side, each round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    model = load_model(args.model)
    started = time.perf_counter()
    inputs, _ = model.sample_inputs(16)
    reference = run_isolated(reference_job, (model.source, model.inputs, inputs), 600).value
    variants = [Variant(t.backend, "cpu", t.precision, args.batch, t.threads, t.knobs)
                for t, reason in plan_families(model, build_spec({"devices": ["cpu"]})) if reason is None]
    rows = []
    for variant in variants:
        plan = PointPlan(model.source, model.inputs, variant, StopRule(budget_s=args.budget),
                         WarmupRule(budget_s=2.0), reference, inputs)
        ours, theirs = [], []
        for round_index in range(args.rounds):
            # Alternate who goes first: the shared machine drifts 5-10% over minutes.
            order = ("hwfit", "independent") if round_index % 2 == 0 else ("independent", "hwfit")
            for side in order:
                print(f"  round {round_index + 1}: {side}: {variant.key}", file=sys.stderr)
                if side == "hwfit":
                    ours.append(run_isolated(hwfit_job, (plan,), 600))
                else:
                    theirs.append(run_isolated(independent_job, (model.source, model.inputs, variant, args.budget), 600))
        rows.append((variant, ours, theirs))
    failed = print_table(args, rows, time.perf_counter() - started)
    return 1 if failed else 0


def print_table(args, rows, seconds: float) -> int:
    table = Table(title=f"{args.model}, batch {args.batch}, CPU: median batch latency by hwfit's profiler vs "
                  "torch.utils.benchmark (blocked_autorange over the raw library call), each in its own process, "
                  f"{args.rounds} alternating rounds in the same run; figures are the median over rounds",
                  title_justify="left")
    for column in ("variant", "hwfit p50 ms", "per round", "independent ms", "per round", "difference",
                   f"within {AGREEMENT:.0%}"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    failed = 0
    for variant, ours, theirs in rows:
        problems = [o.reason for o in ours + theirs if not o.ok]
        if problems:
            table.add_row(variant.key, "", "", "", "", f"failed: {problems[0]}", "")
            failed += 1
            continue
        our_rounds = [o.value for o in ours]
        their_rounds = [o.value[0] for o in theirs]
        ours_ms, theirs_ms = statistics.median(our_rounds), statistics.median(their_rounds)
        difference = ours_ms / theirs_ms - 1
        agrees = abs(difference) <= AGREEMENT
        failed += not agrees
        table.add_row(variant.key, f"{ours_ms:.2f}", " ".join(f"{v:.1f}" for v in our_rounds), f"{theirs_ms:.2f}",
                      " ".join(f"{v:.1f}" for v in their_rounds), f"{difference:+.1%}",
                      "[green]yes[/]" if agrees else "[red]no[/]")
    console = Console(width=max(Console().width, 150))
    console.print(table)
    console.print(f"{len(rows)} variants, {failed} outside {AGREEMENT:.0%}; whole bench {seconds:.0f} s")
    return failed


if __name__ == "__main__":
    sys.exit(main())

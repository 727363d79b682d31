"""How good is `hwfit check` as a gate on this machine: its false-alarm rate (A/A: the same model on
both sides, so every failure is false) and its detection rate for regressions of known size (a
model made 3, 5, 10 and 20% slower by real extra MatMul work in the ONNX graph, and two whose
weights were rounded to 6 and 8 bits: accuracy regressions), and the CI time one check takes.

Method. A pool of real rounds: every arm (A, a second A, B3, B5, B10, B20, Q6, Q8) measured in `--pool`
rounds through the check's own code path (`profile.measure_rounds`: one fresh process per arm and
round, arms interleaved). A trial is one check: `--rounds` round indices drawn at random, baseline
= A's rounds there, candidate = the arm's rounds at the same indices (the rounds that ran next to
each other, as in an interleaved check), decided by `check.compare_points` with the default
thresholds. Rates are over `--trials` trials; their 95% interval comes from bootstrapping the pool's
rounds (trials drawn from overlapping rounds are not independent, the pool's rounds are). Then
`--e2e` real end-to-end runs of `hwfit check` (A/A and B5) give the CI time and confirm the verdicts.

    python bench/check_power.py [--pool 30] [--rounds 6] [--trials 1000] [--e2e 2] [--md out.md]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.check.models writes the models

from hwfit.check import CheckSettings, compare_points  # noqa: E402 - after the path above
from hwfit.core import Variant  # noqa: E402 - after the path above
from hwfit.models import load_model  # noqa: E402 - after the path above
from hwfit.profile import Arm, RoundSettings, measure_rounds  # noqa: E402 - after the path above
from tests.check.models import write_matmul_chain  # noqa: E402 - after the path above

SIZES = {"B3": 0.03, "B5": 0.05, "B10": 0.10, "B20": 0.20}
BATCH = 16
VARIANT = Variant("ort", "cpu", "fp32", BATCH, 1)


def build_models(folder: Path) -> dict[str, Path]:
    paths = {"A": write_matmul_chain(folder / "a.onnx")}
    # the same graph and work under another name: a different content hash, so `hwfit check` runs it interleaved
    paths["A'"] = _renamed(paths["A"], folder / "a_copy.onnx")
    for name, fraction in SIZES.items():
        paths[name] = write_matmul_chain(folder / f"{name.lower()}.onnx", extra_fraction=fraction)
    for bits in (6, 8):
        paths[f"Q{bits}"] = write_matmul_chain(folder / f"q{bits}.onnx", weight_bits=bits)
    return paths


def _renamed(source: Path, target: Path) -> Path:
    import onnx

    model = onnx.load(str(source))
    model.doc_string = "the same model, another file"
    onnx.save(model, str(target))
    return target


def collect_pool(paths: dict[str, Path], pool_rounds: int, settings: RoundSettings) -> dict[str, list[dict]]:
    arms = [Arm("A", load_model(str(paths["A"]))), Arm("A2", load_model(str(paths["A"])))]
    arms += [Arm(name, load_model(str(paths[name]))) for name in [*SIZES, "Q6", "Q8"]]
    started = time.perf_counter()
    last = [started]

    def progress(text: str) -> None:
        if time.perf_counter() - last[0] > 15:
            last[0] = time.perf_counter()
            print(f"  [{time.perf_counter() - started:4.0f} s] {text}", file=sys.stderr, flush=True)

    pool_settings = RoundSettings(pool_rounds, settings.round_s, settings.warmup_s, settings.timeout_s)
    outcome = measure_rounds(arms, [VARIANT], pool_settings, arms[0].model, progress)
    rounds = {}
    for arm in arms:
        point = outcome.points[arm.name][VARIANT.key]
        if point.status == "failed":
            raise SystemExit(f"arm {arm.name} failed: {point.reason}")
        rounds[arm.name] = point.rounds
    print(f"pool: {outcome.processes} processes in {outcome.wall_s:.0f} s", file=sys.stderr)
    return rounds


def decide(pool: dict[str, list[dict]], arm: str, indices, settings: CheckSettings) -> tuple[str, list[str]]:
    from hwfit.store import Measurement

    def point(name):
        made = Measurement(VARIANT.key, VARIANT.to_dict(), "ok")
        made.rounds = [pool[name][i] for i in indices]
        return made

    result = compare_points(VARIANT.key, point("A"), point(arm), settings, interval=False)
    return result.verdict, [m.metric.name for m in result.metrics if m.verdict == "fail"]


def rates(pool, arm, n, trials, settings, rng) -> tuple[float, float, dict]:
    total = len(pool["A"])
    fails = warns = 0
    by_metric: dict[str, int] = {}
    for _ in range(trials):
        verdict, failed = decide(pool, arm, rng.choice(total, n, replace=False), settings)
        fails += verdict == "fail"
        warns += verdict == "warn"
        for name in failed:
            by_metric[name] = by_metric.get(name, 0) + 1
    return fails / trials, warns / trials, by_metric


def bootstrap_interval(pool, arm, n, settings, rng, reps: int, trials: int) -> tuple[float, float]:
    total = len(pool["A"])
    estimates = []
    for _ in range(reps):
        picked = rng.choice(total, total, replace=True)
        resampled = {name: [rounds[i] for i in picked] for name, rounds in pool.items()}
        fails = 0
        for _ in range(trials):
            # distinct positions of the resampled pool (a round drawn twice may appear twice, as in the bootstrap)
            fails += decide(resampled, arm, rng.choice(total, n, replace=False), settings)[0] == "fail"
        estimates.append(fails / trials)
    low, high = np.percentile(estimates, [2.5, 97.5])
    return float(low), float(high)


def measured_slowdown(pool, arm) -> tuple[float, float]:
    """(p50 change, accuracy loss) of the arm against A over the whole pool: medians of every round."""
    base = np.median([r["p50_ms"] for r in pool["A"]])
    cand = np.median([r["p50_ms"] for r in pool[arm]])
    loss = np.median([r.get("accuracy_loss", np.nan) for r in pool[arm]])
    return float(cand / base - 1), float(loss)


def end_to_end(paths: dict[str, Path], folder: Path, runs: int, settings: RoundSettings) -> list[dict]:
    """Real `hwfit check` runs: a baseline recorded from A, then A' (A/A) and B5 against it, interleaved."""
    baseline, db = folder / "baseline.json", folder / "e2e.db"
    timing = [
        "--rounds",
        str(settings.rounds),
        "--round-s",
        str(settings.round_s),
        "--warmup-s",
        str(settings.warmup_s),
    ]
    sweep = folder / "sweep.yaml"
    sweep.write_text(f"backends: [ort]\nprecisions: [fp32]\nbatch_sizes: [{BATCH}]\nthreads: [1]\n")
    hwfit = [str(Path(sys.executable).parent / "hwfit")]  # the console script of this environment
    common = ["--baseline", str(baseline), "--db", str(db), "--sweep", str(sweep), *timing]
    started = time.perf_counter()
    subprocess.run(
        [*hwfit, "check", str(paths["A"]), *common, "--update-baseline", "--json"], capture_output=True, check=True
    )
    outcomes = [
        {"case": "record baseline (A)", "verdict": "written", "exit": 0, "wall_s": time.perf_counter() - started}
    ]
    for run in range(runs):
        for case, model in (("A/A (A' vs A)", "A'"), ("B5 vs A", "B5")):
            started = time.perf_counter()
            done = subprocess.run(
                [*hwfit, "check", str(paths[model]), *common, "--baseline-model", str(paths["A"]), "--json"],
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - started
            report = json.loads(done.stdout)
            failed = [m["metric"] for v in report.get("variants", []) for m in v["metrics"] if m["verdict"] == "fail"]
            p50 = next((m for v in report.get("variants", []) for m in v["metrics"] if m["metric"] == "p50_ms"), {})
            outcomes.append(
                {
                    "case": f"{case} #{run + 1}",
                    "verdict": report.get("verdict"),
                    "exit": done.returncode,
                    "wall_s": wall,
                    "p50_change": p50.get("change"),
                    "failed": failed,
                    "mode": report.get("mode"),
                }
            )
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=30, help="rounds of every arm in the pool")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per side in one check (hwfit check's default)")
    parser.add_argument("--round-s", type=float, default=1.0)
    parser.add_argument("--warmup-s", type=float, default=0.5)
    parser.add_argument("--trials", type=int, default=1000, help="checks drawn from the pool per arm")
    parser.add_argument("--boot", type=int, default=60, help="bootstrap resamples of the pool for the rates' interval")
    parser.add_argument("--e2e", type=int, default=2, help="real hwfit check runs of each case")
    parser.add_argument("--md", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()
    settings = RoundSettings(args.rounds, args.round_s, args.warmup_s)
    check_settings = CheckSettings(settings)
    rng = np.random.default_rng(17)
    bench_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hwfit-check-power-") as tmp:
        folder = Path(tmp)
        paths = build_models(folder)
        pool = collect_pool(paths, args.pool, settings)
        rows = []
        for arm in ["A2", *SIZES, "Q6", "Q8"]:
            fail_rate, warn_rate, by_metric = rates(pool, arm, args.rounds, args.trials, check_settings, rng)
            low, high = bootstrap_interval(pool, arm, args.rounds, check_settings, rng, args.boot, 200)
            change, loss = measured_slowdown(pool, arm)
            rows.append((arm, change, loss, fail_rate, low, high, warn_rate, by_metric))
        e2e = end_to_end(paths, folder, args.e2e, settings) if args.e2e else []
    text = render(args, rows, e2e, time.perf_counter() - bench_started)
    print(text)
    if args.md:
        args.md.write_text(text)


ARM_LABEL = {
    "A2": "A/A: the same model (every failure is a false alarm)",
    "B3": "3% more MatMul FLOPs",
    "B5": "5% more MatMul FLOPs",
    "B10": "10% more MatMul FLOPs",
    "B20": "20% more MatMul FLOPs",
    "Q6": "weights rounded to 6 bits (accuracy)",
    "Q8": "weights rounded to 8 bits (accuracy)",
}


def render(args, rows, e2e, wall_s: float) -> str:
    lines = [
        "# hwfit check: false alarms and detection on this machine",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d}, {platform.processor() or platform.machine()}, "
        f"`python bench/check_power.py --pool {args.pool} --rounds {args.rounds} --trials {args.trials}"
        f" --boot {args.boot} --e2e {args.e2e}` ({wall_s / 60:.1f} min in all). The machine (2 cores) was shared "
        "with other jobs while this ran: the noise is real.",
        "",
        f"Model: a chain of 24 MatMul+Tanh layers (128 wide), ONNX Runtime CPU, fp32, batch {BATCH}, 1 thread. "
        f"A check: {args.rounds} rounds per side of {args.round_s:g} s (+{args.warmup_s:g} s warm-up), each a "
        "fresh process, default thresholds (p50 and throughput fail at 3% with p < 0.01). Each rate: "
        f"{args.trials} checks drawn from a pool of {args.pool} interleaved rounds per arm (all measured); "
        "95% interval: bootstrap over the pool's rounds.",
        "",
        "| candidate vs A | measured p50 change | accuracy loss | fails (rate) | 95% interval | warns "
        "| metrics that failed |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for arm, change, loss, fail_rate, low, high, warn_rate, by_metric in rows:
        metrics = ", ".join(f"{name} {count / args.trials:.0%}" for name, count in sorted(by_metric.items())) or "—"
        lines.append(
            f"| {ARM_LABEL[arm]} | {change:+.1%} | {loss:.4f} | **{fail_rate:.1%}** | {low:.1%}–{high:.1%} | "
            f"{warn_rate:.1%} | {metrics} |"
        )
    false_alarm = rows[0][3]
    detected = [arm for arm, *_rest in rows[1:5] if _rest[2] >= 0.95]
    smallest = min((SIZES[a] for a in detected), default=None)
    lines += [
        "",
        f"False-alarm rate (A/A): **{false_alarm:.1%}** (target ≤ 1%). Smallest injected slowdown detected in ≥ 95% "
        f"of checks: **{f'{smallest:.0%}' if smallest else 'none'}** (target: 5%).",
    ]
    if e2e:
        lines += ["", "End-to-end `hwfit check` runs (interleaved, the CI path):", ""]
        lines += ["| case | verdict | exit | p50 change | failed metrics | CI time |", "|---|---|---:|---:|---|---:|"]
        for row in e2e:
            change = f"{row['p50_change']:+.1%}" if row.get("p50_change") is not None else "—"
            failed = ", ".join(row.get("failed", [])) or "—"
            lines.append(
                f"| {row['case']} | {row['verdict']} | {row['exit']} | {change} | {failed} | {row['wall_s']:.0f} s |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""How good is `hwfit check` as a gate on this machine: its false-alarm rate (A/A: the same model on
both sides, so every failure is false) and its detection rate for regressions of known size (a
model made 3, 5, 10 and 20% slower by real extra MatMul work in the ONNX graph, and one whose
weights were rounded to 8 bits: an accuracy regression of about one point), and the CI time one
check takes.

Method. A pool of real rounds: every arm (A, a second A, B3, B5, B10, B20, Q8) measured in `--pool`
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
    for bits in (8,):
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
    arms += [Arm(name, load_model(str(paths[name]))) for name in [*SIZES, "Q8"]]
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


def decide(pool, arm: str, base_indices, cand_indices, settings: CheckSettings, paired: bool):
    """One check's verdict (and the metrics that failed) on rounds of the pool."""
    from hwfit.store import Measurement

    def point(name, indices):
        made = Measurement(VARIANT.key, VARIANT.to_dict(), "ok")
        made.rounds = [pool[name][i] for i in indices]
        return made

    result = compare_points(
        VARIANT.key, point("A", base_indices), point(arm, cand_indices), settings, interval=False, paired=paired
    )
    return result.verdict, [m.metric.name for m in result.metrics if m.verdict == "fail"]


def interleaved_draw(total: int, n: int, rng):
    """n rounds at random: both sides' rounds at the same indices (they ran side by side)."""
    indices = rng.choice(total, n, replace=False)
    return indices, indices


def stored_draw(total: int, n: int, rng):
    """Two non-overlapping blocks of n consecutive rounds: the baseline recorded at one time, the
    candidate measured at another (what a check against stored rounds compares)."""
    while True:
        first, second = rng.integers(0, total - n + 1, 2)
        if abs(int(first) - int(second)) >= n:
            return np.arange(first, first + n), np.arange(second, second + n)


def rates(pool, arm, n, trials, settings, rng, stored: bool = False) -> tuple[float, float, dict]:
    total = len(pool["A"])
    fails = warns = 0
    by_metric: dict[str, int] = {}
    for _ in range(trials):
        base, cand = stored_draw(total, n, rng) if stored else interleaved_draw(total, n, rng)
        verdict, failed = decide(pool, arm, base, cand, settings, paired=not stored)
        fails += verdict == "fail"
        warns += verdict == "warn"
        for name in failed:
            by_metric[name] = by_metric.get(name, 0) + 1
    return fails / trials, warns / trials, by_metric


def bootstrap_interval(pool, arm, n, settings, rng, reps: int, trials: int) -> tuple[float, float]:
    """95% interval of an interleaved rate: the pool's rounds resampled (whole rounds, both sides
    together), the rate estimated again on each resample."""
    total = len(pool["A"])
    estimates = []
    for _ in range(reps):
        picked = rng.choice(total, total, replace=True)
        resampled = {name: [rounds[i] for i in picked] for name, rounds in pool.items()}
        fails = 0
        for _ in range(trials):
            base, cand = interleaved_draw(total, n, rng)
            fails += decide(resampled, arm, base, cand, settings, paired=True)[0] == "fail"
        estimates.append(fails / trials)
    low, high = np.percentile(estimates, [2.5, 97.5])
    return float(low), float(high)


def rule_table(pool, trials: int, rng) -> str:
    """Detection by rounds per side and test, p50 only (fail at p < 0.01 and 3%): why the rule is what it is."""
    from hwfit.check import DEFAULT_METRICS, compare_samples

    p50 = DEFAULT_METRICS["p50_ms"]
    total = len(pool["A"])
    arms = ["A2", "B3", "B5", "B10"]
    lines = [
        "| rounds per side | test | " + " | ".join(ARM_LABEL[a].split(":")[0] for a in arms) + " |",
        "|---:|---|" + "---:|" * len(arms),
    ]
    for rounds in (6, 8, 10):
        for paired, name in ((False, "Mann-Whitney (unpaired)"), (True, "Wilcoxon signed-rank (paired)")):
            cells = []
            for arm in arms:
                base = np.array([r["p50_ms"] for r in pool["A"]])
                cand = np.array([r["p50_ms"] for r in pool[arm]])
                fails = 0
                for _ in range(trials):
                    indices = rng.choice(total, rounds, replace=False)
                    result = compare_samples(p50, base[indices], cand[indices], 0.01, interval=False, paired=paired)
                    fails += result.verdict == "fail"
                cells.append(f"{fails / trials:.1%}")
            lines.append(f"| {rounds} | {name} | " + " | ".join(cells) + " |")
    a = np.log([r["p50_ms"] for r in pool["A"]])
    pair_spreads = [np.std(np.log([r["p50_ms"] for r in pool[arm]]) - a) for arm in pool if arm != "A"]
    lines += [
        "",
        f"The pool: per-round p50 of A spreads by {np.std(a):.1%} (sd of its log), lag-1 autocorrelation "
        f"{np.corrcoef(a[:-1], a[1:])[0, 1]:.2f}; log ratio of two arms' p50 in the same round spreads by "
        f"{min(pair_spreads):.1%}-{max(pair_spreads):.1%}; A's throughput per round by "
        f"{np.std(np.log([r['samples_per_s'] for r in pool['A']])):.0%}, its p99 by "
        f"{np.std(np.log([r['p99_ms'] for r in pool['A']])):.0%}.",
    ]
    return "\n".join(lines) + "\n"


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
    parser.add_argument("--rounds", type=int, default=10, help="rounds per side in one check (hwfit check's default)")
    parser.add_argument("--round-s", type=float, default=1.0)
    parser.add_argument("--warmup-s", type=float, default=0.5)
    parser.add_argument("--trials", type=int, default=1000, help="checks drawn from the pool per arm")
    parser.add_argument("--boot", type=int, default=60, help="bootstrap resamples of the pool for the rates' interval")
    parser.add_argument("--e2e", type=int, default=2, help="real hwfit check runs of each case")
    parser.add_argument("--md", type=Path, help="also write the Markdown table here")
    parser.add_argument("--save-pool", type=Path, help="write the pool's rounds (JSON) here")
    parser.add_argument("--load-pool", type=Path, help="decide on a saved pool instead of measuring one")
    parser.add_argument("--rules", action="store_true", help="also compare tests and round counts (p50 only)")
    args = parser.parse_args()
    settings = RoundSettings(args.rounds, args.round_s, args.warmup_s)
    check_settings = CheckSettings(settings)
    rng = np.random.default_rng(17)
    bench_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hwfit-check-power-") as tmp:
        folder = Path(tmp)
        paths = build_models(folder)
        if args.load_pool:
            pool = json.loads(args.load_pool.read_text())
            args.pool = len(pool["A"])
        else:
            pool = collect_pool(paths, args.pool, settings)
        if args.save_pool:
            args.save_pool.write_text(json.dumps(pool))
        rows = []
        for arm in ["A2", *SIZES, "Q8"]:
            fail_rate, warn_rate, by_metric = rates(pool, arm, args.rounds, args.trials, check_settings, rng)
            low, high = bootstrap_interval(pool, arm, args.rounds, check_settings, rng, args.boot, 200)
            stored_rate, _, _ = rates(pool, arm, args.rounds, args.trials, check_settings, rng, stored=True)
            change, loss = measured_slowdown(pool, arm)
            rows.append((arm, change, loss, fail_rate, low, high, warn_rate, by_metric, stored_rate))
        e2e = end_to_end(paths, folder, args.e2e, settings) if args.e2e else []
    text = render(args, rows, e2e, time.perf_counter() - bench_started)
    if args.rules:
        text += "\nDetection by rounds per side and test (p50 only, fail at p < 0.01 and 3%, "
        text += f"{args.trials} draws of the pool each):\n\n" + rule_table(pool, args.trials, rng)
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
    source = f"--load-pool (a pool saved by an earlier run of {args.pool} rounds)" if args.load_pool else "measured"
    lines = [
        "# hwfit check: false alarms and detection on this machine",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d}, {platform.processor() or platform.machine()}, "
        f"`python bench/check_power.py --pool {args.pool} --rounds {args.rounds} --trials {args.trials}"
        f" --boot {args.boot} --e2e {args.e2e}` ({wall_s / 60:.1f} min in all; pool {source}). The machine "
        "(2 cores) was shared with other jobs while this ran: the noise is real.",
        "",
        f"Model: a chain of 24 MatMul+Tanh layers (128 wide), ONNX Runtime CPU, fp32, batch {BATCH}, 1 thread. "
        f"A check: {args.rounds} rounds per side of {args.round_s:g} s (+{args.warmup_s:g} s warm-up), each a "
        "fresh process, default thresholds (p50 and throughput fail at 3%, accuracy loss at +0.01, with p < 0.01). "
        f"Each rate: {args.trials} checks drawn from a pool of {args.pool} interleaved rounds per arm (all "
        "measured). **Interleaved** (the CI path, `--baseline-model`): both sides' rounds at the same random "
        "indices, paired (Wilcoxon signed-rank); 95% interval by bootstrapping the pool's rounds. **Stored** "
        "(no baseline model: the candidate against rounds recorded at another time): two non-overlapping "
        "blocks of consecutive rounds, unpaired (Mann-Whitney); no interval (the blocks overlap between trials).",
        "",
        "| candidate vs A | measured p50 change | accuracy loss | interleaved: fails | 95% interval | warns "
        "| metrics that failed | stored: fails |",
        "|---|---:|---:|---:|---|---:|---|---:|",
    ]
    for arm, change, loss, fail_rate, low, high, warn_rate, by_metric, stored_rate in rows:
        metrics = ", ".join(f"{name} {count / args.trials:.0%}" for name, count in sorted(by_metric.items())) or "—"
        lines.append(
            f"| {ARM_LABEL[arm]} | {change:+.1%} | {loss:.4f} | **{fail_rate:.1%}** | {low:.1%}–{high:.1%} | "
            f"{warn_rate:.1%} | {metrics} | {stored_rate:.1%} |"
        )
    false_alarm = rows[0][3]
    detected = [row[0] for row in rows[1:5] if row[3] >= 0.95]
    smallest = min((SIZES[a] for a in detected), default=None)
    lines += [
        "",
        f"Interleaved: false-alarm rate (A/A) **{false_alarm:.1%}** (target ≤ 1%); smallest injected slowdown "
        f"detected in ≥ 95% of checks: **{f'{smallest:.0%}' if smallest else 'none'}** (target: 5%).",
    ]
    if e2e:
        lines += ["", "End-to-end `hwfit check` runs (interleaved, the CI path, default settings):", ""]
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

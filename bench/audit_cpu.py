"""`hwfit audit` on this machine's CPU: MiniLM served twice by `hwfit serve` — a wasteful plan (ONNX
Runtime fp32, batch 1, one thread of the cores, one replica) under a light open-loop load, and the plan
`hwfit plan` chooses from the same store for a throughput SLO, under the load it was sized for and
under the same light load — each audited for a window by `hwfit audit --serve URL`.

1. `hwfit profile minilm` on ONNX Runtime, fp32 and int8-dynamic, batch 1/4/8, threads 1 and 2, and
   2 replicas x 1 thread, into a store of its own (resumable: a second run reuses it).
2. Wasteful: a one-pool plan of ort/cpu/fp32/b1/t1 x 1, loaded at 20% of its measured batch-1 capacity
   (poisson), audited for --window seconds.
3. Tuned: `hwfit plan minilm --slo` (objective throughput, p99 <= 1 s, accuracy loss <= 0.01), loaded at
   the plan's expected rate (poisson), audited; then the same tuned server at the wasteful run's rate.
   Requests carry MiniLM's profiled sequence length (128), so the store's FLOPs per sample hold.
4. One table of the waterfalls' shares side by side, with the rate offered and answered in each window,
   and each audit's advice. Every figure is `hwfit audit --json` output; the load generator runs on the
   same cores (it is in the "other processes" step, with anything else running on the machine).

    python bench/audit_cpu.py                      # ~10 min on a 2-core machine
    python bench/audit_cpu.py --window 20 --quick  # smoke run (not quotable)
    python bench/audit_cpu.py --md bench/results/audit_cpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import load_cost as lc  # bench/ is sys.path[0]: free_port, wait_ready, HWFIT

from hwfit.core import Variant, cache_dir
from hwfit.models import load_model
from hwfit.plan import load_plan
from hwfit.store import open_store

sys.path.insert(0, str(lc.ROOT))
from tests.audit.plans import one_pool_plan, write_one_pool_plan  # noqa: E402 - after the path above

MODEL = "minilm"
SEQUENCE = 128  # the length `hwfit profile` measures MiniLM at: the store's FLOPs per sample are for it
WASTEFUL = Variant("ort", "cpu", "fp32", 1, 1)
SLO = {
    "latency_p99_ms": 1000,
    "throughput_rps": 100,
    "max_accuracy_loss": 0.01,
    "objective": "throughput",
    "devices": {"cpu": {"count": 1}},
}
STEPS = (
    "idle",
    "other processes",
    "busy but not computing",
    "batch below the sweet spot",
    "precision left on the table",
    "computing below peak",
    "useful",
)


def hwfit(*args: str, timeout: float = 1800) -> str:
    done = subprocess.run([*lc.HWFIT, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"`hwfit {' '.join(args)}` failed: {(done.stdout + done.stderr).strip()[-800:]}")
    return done.stdout


def profile(db: Path, quick: bool) -> None:
    budget = "1" if quick else "3"
    for threads, replicas in (("1,2", "1"), ("1", "2")):
        hwfit(
            "profile",
            MODEL,
            "-b",
            "ort",
            "-p",
            "fp32,int8-dynamic",
            "--batch",
            "1,4,8",
            "--threads",
            threads,
            "--replicas",
            replicas,
            "--budget",
            budget,
            "--db",
            str(db),
        )


def wasteful_plan(db: Path, folder: Path) -> Path:
    model = load_model(MODEL)
    with open_store(db) as store:
        points = {m.variant_key: m for run in store.list_runs(model=MODEL) for m in store.measurements(run.id)}
    service = {b: points[WASTEFUL.with_batch(b).key].latency.p50_ms for b in (1,)}
    plan = one_pool_plan(model.name, model.source, model.content_hash, WASTEFUL, 1, service)
    return write_one_pool_plan(folder / "wasteful.yaml", plan)


def tuned_plan(db: Path, folder: Path) -> Path:
    slo = folder / "slo.yaml"
    slo.write_text(json.dumps(SLO))
    target = folder / "tuned.yaml"
    hwfit("plan", MODEL, "--slo", str(slo), "--no-measure", "--db", str(db), "-o", str(target))
    return target


def audited(plan_path: Path, rate: float, window_s: float, db: Path) -> dict:
    """Serve the plan, load it open-loop at `rate` for the window (+ margins), audit it; the audit's JSON."""
    port = lc.free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*lc.HWFIT, "serve", str(plan_path), "--http-port", str(port), "--grpc-port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        lc.wait_ready(url, server, timeout_s=300)
        load: dict = {}

        def send() -> None:
            shapes = ["--shape", f"input_ids=1,{SEQUENCE}", "--shape", f"attention_mask=1,{SEQUENCE}"]
            load.update(lc.run_load(url, ["--traffic", f"poisson:{rate:.3f}", "--binary", *shapes], window_s + 8))

        sender = threading.Thread(target=send)
        sender.start()
        result = json.loads(
            hwfit(
                "audit",
                "--seconds",
                f"{window_s:g}",
                "--serve",
                url,
                "--db",
                str(db),
                "-d",
                "cpu",
                "--json",
                timeout=window_s + 120,
            )
        )
        sender.join()
        result["load"] = load
        result["offered_rps"] = rate
        return result
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def shares(result: dict) -> dict[str, float]:
    return {step["name"]: step["share"] for step in result["waterfalls"][0]["steps"]}


def table(runs: list[tuple[str, dict]]) -> str:
    lines = ["| step | " + " | ".join(name for name, _ in runs) + " |", "|---|" + "---:|" * len(runs)]
    for step in STEPS:
        cells = [f"{shares(r).get(step, 0.0):.1%}" if step in shares(r) else "—" for _, r in runs]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    busy = [1.0 - shares(r).get("idle", 0.0) - shares(r).get("other processes", 0.0) for _, r in runs]
    lines.append(
        "| useful / audited busy | "
        + " | ".join(f"{shares(r).get('useful', 0.0) / b:.1%}" if b > 0 else "—" for (_, r), b in zip(runs, busy))
        + " |"
    )
    lines.append("| offered req/s (poisson) | " + " | ".join(f"{r['offered_rps']:.1f}" for _, r in runs) + " |")
    lines.append(
        "| answered req/s in the window | "
        + " | ".join(f"{sum(p['answered'] for p in r['pools']) / r['window_s']:.1f}" for _, r in runs)
        + " |"
    )
    lines.append(
        "| served | "
        + " | ".join(
            f"{p['variant']} x{p['replicas']}, mean batch {p['mean_batch'] or 0:.1f}"
            for _, r in runs
            for p in r["pools"]
        )
        + " |"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=60.0, help="audit window per run, seconds")
    parser.add_argument("--quick", action="store_true", help="1 s per profile point (not quotable)")
    parser.add_argument("--db", type=Path, default=cache_dir() / "bench-audit_cpu.db")
    parser.add_argument("--md", type=Path, help="also write the result here")
    options = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="audit_cpu-"))
    print(f"profiling {MODEL} into {options.db} (resumes) ...", flush=True)
    profile(options.db, options.quick)
    wasteful = wasteful_plan(options.db, folder)
    tuned = tuned_plan(options.db, folder)
    wasteful_capacity = load_plan(wasteful).pools[0].expected.capacity_rps
    light = 0.2 * wasteful_capacity
    tuned_rate = load_plan(tuned).expected.rate_rps
    runs = []
    for name, plan_path, rate in (
        ("wasteful, light load", wasteful, light),
        ("tuned, its planned load", tuned, tuned_rate),
        ("tuned, the same light load", tuned, light),
    ):
        print(f"{name}: serving {plan_path.name} at {rate:.1f} req/s, auditing {options.window:g} s ...", flush=True)
        runs.append((name, audited(plan_path, rate, options.window, options.db)))
    text = [
        f"# hwfit audit on the CPU: a wasteful and a tuned plan of {MODEL}",
        "",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; `python bench/audit_cpu.py "
        f"--window {options.window:g}`, run while the project's test suite ran on the same 2 cores (it is in "
        "'other processes'). Shares of the purchased peak x window: the peak of the fastest precision the store "
        "shows within the accuracy tolerance (int8 here), never below what the store shows the CPU delivering; "
        "each window is one `hwfit audit --serve URL --json`.",
        "",
        table(runs),
        "",
    ]
    for name, result in runs:
        text.append(f"**{name}** — ended: {result['ended_because']}; advice:")
        text += [f"- {a['action']} — {a['evidence']}; expected: {a['gain']}" for a in result["advice"]] or ["- none"]
        text += [f"- note: {n}" for w in result["waterfalls"] for n in w["notes"]]
        text.append("")
    output = "\n".join(text)
    print(output)
    if options.md:
        options.md.write_text(output + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

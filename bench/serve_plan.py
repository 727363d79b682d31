"""hwfit serving its own plan: throughput against the best raw configuration of the machine, a long
overload at twice the plan's capacity, and a worker killed under load.

1. Plan: `hwfit plan MODEL --slo SLO` (throughput objective by default: the plan picks backend,
   precision, replicas x threads and max batch for this machine), or `--plan plan.yaml`.
2. Best raw: the plan's backend and precision timed with no server at every CPU layout (K replicas
   x t threads with K*t <= cores, the K replicas running side by side) and batch 1..64, through
   hwfit's own backend on the same inputs the server gets; the best samples/s any of them reaches.
3. Served: `hwfit serve plan.yaml`, closed loop at `--concurrency` clients (binary tensor
   extension); throughput / best raw.
4. Overload: open loop (Poisson) at twice the plan's capacity for `--overload-s` seconds. Every
   request is counted by outcome: answered, refused at once (429/503, with Retry-After), or lost (any
   other outcome: a timeout, a 5xx, a dropped connection). p99 of answered requests against the
   plan's p99; the server's resident memory (process tree) sampled every second.
5. Kill: open loop at the plan's sustained rate; a worker process is SIGKILLed mid-window; lost
   requests counted the same way, and the restart seen in /metrics.

Loopback only; every server and load process is torn down by process group; bounded in time.

    python bench/serve_plan.py                        # plans minilm, ~15 min on a 2-core machine
    python bench/serve_plan.py --plan plan.yaml --md bench/results/serve_plan.md
    python bench/serve_plan.py --quick                # smoke run, short windows (not quotable)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import serve_load as sl  # bench/ is sys.path[0] when this script runs

from hwfit.plan import Plan, load_plan

ROOT = Path(__file__).resolve().parent.parent
BATCHES = (1, 2, 4, 8, 16, 32, 64)
THROUGHPUT_SLO = {
    "latency_p99_ms": 2000,
    "throughput_rps": 10,
    "objective": "throughput",
    "devices": {"cpu": {"count": 1}},
}


@dataclass
class Outcome:
    """One load run against the served plan, read from the load generator's summary."""

    run: dict
    memory_mb: list[float] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return self.run.get("ok", 0)

    @property
    def refused(self) -> int:
        return self.run.get("rejects", 0)

    @property
    def lost(self) -> int:
        return self.run.get("errors", 0) - self.refused

    @property
    def lost_detail(self) -> str:
        other = {k: v for k, v in self.run.get("outcomes", {}).items() if k not in ("http 429", "http 503")}
        if self.run.get("cancelled_at_drain"):
            other["unanswered at drain"] = self.run["cancelled_at_drain"]
        return ", ".join(f"{k}: {v}" for k, v in other.items()) or "none"

    @property
    def memory_growth_mb(self) -> float:
        """Peak RSS of the second half of the run minus the first half's (0 with too few samples)."""
        half = len(self.memory_mb) // 2
        return max(self.memory_mb[half:]) - max(self.memory_mb[:half]) if half else 0.0


# --- the plan -------------------------------------------------------------------------------------


def make_plan(model: str, slo_path: Path | None, out: Path, db: Path | None) -> Path:
    """`hwfit plan MODEL --slo SLO -o OUT` (measures what the store lacks, with its progress)."""
    if slo_path is None:
        import yaml

        slo_path = out.with_name("slo-throughput.yaml")
        slo_path.write_text(yaml.safe_dump(THROUGHPUT_SLO))
    base = sl.hwfit_base()
    command = [*base, "plan", model, "--slo", str(slo_path), "-o", str(out)]
    if db is not None:
        command += ["--db", str(db)]
    print("$ hwfit " + " ".join(command[len(base) :]), flush=True)
    done = subprocess.run(command, timeout=1800)
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"hwfit plan failed (exit {done.returncode}); give a plan with --plan / --fault-plan")
    return out


def primary_pool(plan: Plan):
    return next(pool for pool in plan.pools if pool.role == "primary")


# --- best raw -------------------------------------------------------------------------------------


def cpu_layouts(cores: int) -> list[tuple[int, int]]:
    """(replicas, threads) with replicas * threads <= cores, each t at its widest for K."""
    return sorted({(k, cores // k) for k in range(1, cores + 1)} | {(1, 1)})


def best_raw(plan: Plan, inputs_path: Path, warmup_s: float, window_s: float) -> list[dict]:
    """Samples/s of the plan's variant family at every layout and batch size, K replicas side by side."""
    pool = primary_pool(plan)
    rows = []
    cores = psutil.cpu_count(logical=True) or 1
    for replicas, threads in cpu_layouts(cores):
        print(
            f"  raw {pool.backend}/{pool.precision}: {replicas} replica(s) x {threads} thread(s), "
            f"batch {','.join(map(str, BATCHES))}",
            flush=True,
        )
        command = [
            sys.executable,
            str(sl.PEERS_DIR / "raw_variant.py"),
            str(inputs_path),
            "--model",
            plan.model.source,
            "--backend",
            pool.backend,
            "--device",
            pool.device,
            "--precision",
            pool.precision,
            "--knobs",
            json.dumps(pool.knobs),
            "--threads",
            str(threads),
            "--batches",
            ",".join(map(str, BATCHES)),
            "--warmup",
            str(warmup_s),
            "--window",
            str(window_s),
        ]
        processes = [
            subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": str(threads)},
                start_new_session=True,
            )
            for _ in range(replicas)
        ]
        try:
            for process in processes:
                if process.stdout.readline().strip() != "ready":
                    raise SystemExit(f"raw replica failed to load: exit {process.wait()}")
            start_at = time.time() + 1.0
            for process in processes:
                process.stdin.write(f"{start_at}\n")
                process.stdin.flush()
            budget = len(BATCHES) * (warmup_s + window_s + 2.0) + 60
            results = [json.loads(p.communicate(timeout=budget)[0].strip().splitlines()[-1])["rows"] for p in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    sl.stop_process_tree(process, grace_s=1)
        for index, batch_size in enumerate(BATCHES):
            rows.append(
                {
                    "replicas": replicas,
                    "threads": threads,
                    "batch_size": batch_size,
                    "samples_per_s": sum(r[index]["samples_per_s"] for r in results),
                    "late_start_s": max(r[index]["late_start_s"] for r in results),
                }
            )
    return rows


# --- serving --------------------------------------------------------------------------------------


def server_tree_rss_mb(process: psutil.Process) -> float:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def worker_processes(process: psutil.Process) -> list[psutil.Process]:
    """The server's spawned worker processes (not multiprocessing's resource tracker)."""
    workers = []
    for child in process.children(recursive=True):
        try:
            line = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "spawn_main" in line:
            workers.append(child)
    return workers


class MemorySampler:
    """The server tree's RSS every `every_s` seconds while a load runs."""

    def __init__(self, process: psutil.Process, every_s: float = 1.0):
        self.process, self.every_s, self.samples = process, every_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.samples.append(server_tree_rss_mb(self.process))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def load_run(mode: dict, url: str, payloads, warmup_s: float, window_s: float, folder: Path) -> dict:
    spec = {
        **mode,
        "url": url,
        "headers": sl.binary_headers(payloads.binary_header_lengths[0]),
        "bodies_b64": [base64.b64encode(b).decode() for b in payloads.binary_bodies],
        "warmup_s": warmup_s,
        "window_s": window_s,
        "drain_s": 30.0,
        "timeout_s": 30.0,
        "max_in_flight": 1024,
        "max_requests": 1_000_000,
        "seed": 0,
    }
    return sl.run_load(spec, folder)


def metric_total(url: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with sl._OPENER.open(url, timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (name, name + "_total") and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def kill_a_worker_after(process: psutil.Process, delay_s: float, killed: list) -> threading.Timer:
    def kill() -> None:
        workers = worker_processes(process)
        if workers:
            victim = workers[0]
            killed.append(victim.pid)
            victim.send_signal(signal.SIGKILL)

    timer = threading.Timer(delay_s, kill)
    timer.start()
    return timer


def check_answers(url: str, payloads, count: int) -> str:
    """Every answer against the fp32 ONNX reference: cosine similarity (a quantized plan differs a little)."""
    worst_cos, worst_abs = 1.0, 0.0
    for row in range(count):
        status, raw, headers = sl.post(
            url, payloads.binary_bodies[row], sl.binary_headers(payloads.binary_header_lengths[row]), timeout_s=30
        )
        if status != 200:
            raise SystemExit(f"request {row} answered HTTP {status}: {raw[:300]!r}")
        output, expected = sl.decode_output(raw, headers), payloads.reference[row].ravel()
        worst_abs = max(worst_abs, float(np.abs(output - expected).max()))
        worst_cos = min(worst_cos, float(output @ expected / (np.linalg.norm(output) * np.linalg.norm(expected))))
    if worst_cos < 0.98:
        raise SystemExit(f"served answers differ from the fp32 reference: cosine down to {worst_cos:.3f}")
    return f"{count} answers checked: cosine to fp32 >= {worst_cos:.4f}, max abs diff {worst_abs:.1e}"


# --- report ---------------------------------------------------------------------------------------


def plan_line(plan: Plan) -> str:
    pool = primary_pool(plan)
    return (
        f"pool `{pool.name}` {pool.variant} x{pool.replicas_per_device} replica(s), max batch "
        f"{pool.max_batch_size}, max queue delay {pool.max_queue_delay_ms:g} ms; SLO p99 "
        f"{plan.slo.latency_p99_ms:g} ms at {plan.slo.throughput_rps:g} req/s; expected capacity "
        f"{plan.expected.capacity_rps:.1f} req/s, p99 {sl.fmt(plan.expected.p99_ms)} ms"
    )


def report(
    plan: Plan,
    fault_plan: Plan,
    raw: list[dict],
    served: dict,
    overload: Outcome,
    kill: Outcome,
    killed: list,
    restarts: float,
    args,
) -> str:
    best = max(raw, key=lambda r: r["samples_per_s"])
    lines = [
        f"# bench/serve_plan.py: hwfit serving its own plans ({plan.model.name})",
        "",
        f"- Throughput plan: {plan_line(plan)}.",
        f"- Fault plan: {plan_line(fault_plan)}.",
        "",
    ]
    lines += [
        "## Best raw configuration of the throughput plan's backend and precision (no server), samples/s",
        "",
        "| replicas x threads | " + " | ".join(f"b{b}" for b in BATCHES) + " |",
        "|---|" + "---:|" * len(BATCHES),
    ]
    for replicas, threads in sorted({(r["replicas"], r["threads"]) for r in raw}):
        cells = [f"{r['samples_per_s']:.1f}" for r in raw if (r["replicas"], r["threads"]) == (replicas, threads)]
        lines.append(f"| {replicas} x {threads} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Best raw: **{best['samples_per_s']:.1f} samples/s** at {best['replicas']} x {best['threads']}, "
        f"batch {best['batch_size']}.",
        "",
    ]
    s = served["run"]
    ratio = s.get("throughput_rps", 0) / best["samples_per_s"]
    lines += [
        "## Served from its own throughput plan",
        "",
        "| load | req/s | p50 ms | p99 ms | errors | x best raw |",
        "|---|---:|---:|---:|---:|---:|",
        f"| closed loop, {args.concurrency} clients, binary | {s.get('throughput_rps', 0):.1f} | "
        f"{sl.fmt(s.get('p50_ms'))} | {sl.fmt(s.get('p99_ms'))} | {s.get('errors', '-')} | **{ratio:.2f}x** |",
        "",
        f"Answers: {served['check']}.",
        "",
    ]
    o, memory = overload.run, overload.memory_mb
    half = len(memory) // 2
    capacity = fault_plan.expected.capacity_rps
    target = 2 * fault_plan.expected.p99_ms if fault_plan.expected.p99_ms else None
    lines += [
        f"## Overload of the fault plan: Poisson arrivals at {2 * capacity:.1f} req/s (2x its capacity) for "
        f"{args.overload_s:g} s",
        "",
        "| offered req/s | answered req/s | answered | refused (429/503) | lost | p50 ms | p99 ms | "
        "2x plan p99 | RSS MB, max of first / second half |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {sl.fmt(o.get('offered_rps'))} | {o.get('throughput_rps', 0):.1f} | {overload.answered} | "
        f"{overload.refused} | **{overload.lost}** | {sl.fmt(o.get('p50_ms'))} | **{sl.fmt(o.get('p99_ms'))}** | "
        f"{sl.fmt(target)} | {max(memory[:half], default=0):.0f} / {max(memory[half:], default=0):.0f} |",
        "",
        f"Lost: {overload.lost_detail}. Memory growth, first half to second: {overload.memory_growth_mb:+.0f} MB.",
        "",
    ]
    k = kill.run
    lines += [
        f"## A worker SIGKILLed under load (Poisson at {args.kill_rate:g} req/s, the fault plan's rate)",
        "",
        "| answered | refused (429/503) | lost | p50 ms | p99 ms | worker killed | restarts in /metrics |",
        "|---:|---:|---:|---:|---:|---|---:|",
        f"| {kill.answered} | {kill.refused} | **{kill.lost}** | {sl.fmt(k.get('p50_ms'))} | "
        f"{sl.fmt(k.get('p99_ms'))} | {'pid ' + str(killed[0]) if killed else 'none found'} | {restarts:g} |",
        "",
        f"Lost: {kill.lost_detail}.",
        "",
    ]
    lines += [
        "## How these figures were obtained",
        "",
        f"- Inputs: {args.samples} real sentences tokenized by the model's tokenizer, padded to "
        f"{args.seq} tokens (the length the plans' measurements used), binary tensor extension.",
        "- Plans: `hwfit plan` on this machine (the throughput plan: objective throughput; the fault plan: "
        f"`{args.fault_slo.name if args.fault_slo else '-'}`, whose p99 is the server's default deadline).",
        "- Best raw: `bench/serve_peers/raw_variant.py`, hwfit's backend in a loop, no server; K replicas as "
        f"K processes measuring in the same time slots (2 s apart; the worst late start of a slot, "
        f"when a batch overran into it: {max(r['late_start_s'] for r in raw):.2f} s); {args.raw_warmup:g} s "
        f"warm-up + {args.raw_window:g} s window per batch size; samples/s summed over the replicas.",
        "- Served: `hwfit serve plan.yaml --cache-mb 0`; load from `bench/_load.py` in its own process "
        f"(asyncio HTTP/1.1 client, keep-alive); closed loop {args.warmup:g} s warm-up + {args.window:g} s window.",
        "- Open loops (every request counted, no warm-up excluded): latency from each request's scheduled "
        "send (no coordinated omission); 'lost' is every "
        "outcome other than 200 and an immediate 429/503 refusal, plus requests unanswered 30 s after "
        "the window.",
        "- Memory: RSS of the server process and its children, every second, via psutil.",
        f"- Machine: {os.cpu_count()} logical CPUs; one run.",
    ]
    return "\n".join(lines) + "\n"


# --- main -----------------------------------------------------------------------------------------


@contextmanager
def serving(plan_path: Path, plan: Plan, payloads, folder: Path):
    """`hwfit serve plan.yaml` on free loopback ports, answering; yields (process, infer URL, base URL)."""
    port = sl.free_port()
    command = [
        *sl.hwfit_base(),
        "serve",
        str(plan_path),
        "--http-port",
        str(port),
        "--grpc-port",
        str(sl.free_port()),
        "--cache-mb",
        "0",
    ]
    log_path = folder / f"hwfit-serve-{plan_path.stem}.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/v2/models/{plan.model.name}/infer"
    try:
        print(f"hwfit serve {plan_path.name} on 127.0.0.1:{port}: waiting until it answers", flush=True)
        sl.wait_ready(server, url, payloads, 300, log_path)
        yield server, url, base
    finally:
        print(f"  teardown: {sl.stop_process_tree(server)}", flush=True)


def measure_throughput(plan_path: Path, plan: Plan, payloads, args, folder: Path) -> dict:
    with serving(plan_path, plan, payloads, folder) as (_, url, _base):
        served = {"check": check_answers(url, payloads, min(16, len(payloads.binary_bodies)))}
        print(f"  closed loop, {args.concurrency} clients: {args.warmup:g} + {args.window:g} s", flush=True)
        served["run"] = load_run(
            {"mode": "closed", "concurrency": args.concurrency}, url, payloads, args.warmup, args.window, folder
        )
    return served


def measure_faults(plan_path: Path, plan: Plan, payloads, args, folder: Path) -> tuple:
    capacity = plan.expected.capacity_rps
    with serving(plan_path, plan, payloads, folder) as (server, url, base):
        tree = psutil.Process(server.pid)
        print(f"  overload at {2 * capacity:.1f} req/s for {args.overload_s:g} s", flush=True)
        with MemorySampler(tree) as memory:
            run = load_run({"mode": "open", "rate": 2 * capacity}, url, payloads, 0.0, args.overload_s, folder)
        overload = Outcome(run, memory.samples)
        print(f"  kill a worker at {args.kill_rate:.1f} req/s", flush=True)
        killed: list = []
        timer = kill_a_worker_after(tree, args.kill_window / 3, killed)
        try:
            kill = Outcome(
                load_run({"mode": "open", "rate": args.kill_rate}, url, payloads, 0.0, args.kill_window, folder)
            )
        finally:
            timer.cancel()
        restarts = metric_total(f"{base}/metrics", "hwfit_worker_restarts")
    return overload, kill, killed, restarts


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="minilm")
    parser.add_argument(
        "--slo", type=Path, help="SLO of the throughput plan (default: objective throughput, p99 2 s, 10 req/s)"
    )
    parser.add_argument(
        "--fault-slo",
        type=Path,
        default=ROOT / "examples" / "slo-latency.yaml",
        help="SLO of the plan the overload and kill runs serve (its p99 is the server's "
        "default deadline; default examples/slo-latency.yaml)",
    )
    parser.add_argument("--plan", type=Path, help="use this throughput plan instead of planning")
    parser.add_argument("--fault-plan", type=Path, help="use this plan for the overload and kill runs")
    parser.add_argument(
        "--db",
        type=Path,
        help="results store for `hwfit plan` (default: hwfit's; "
        "bench/.plan_search.db holds a full grid after bench/plan_search.py)",
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--overload-s", type=float, default=60.0)
    parser.add_argument("--kill-window", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="short windows (smoke run, not quotable)")
    parser.add_argument("--md", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    args.seq, args.samples = 128, 64
    args.warmup, args.window = (1.0, 3.0) if args.quick else (3.0, 15.0)
    args.raw_warmup, args.raw_window = (0.3, 1.0) if args.quick else (1.0, 4.0)
    if args.quick:
        args.overload_s, args.kill_window = min(args.overload_s, 10.0), min(args.kill_window, 8.0)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, sl.interrupt)
    folder = Path(tempfile.mkdtemp(prefix="serve_plan-"))
    plan_path = args.plan or make_plan(args.model, args.slo, folder / "plan-throughput.yaml", args.db)
    fault_plan_path = args.fault_plan or make_plan(args.model, args.fault_slo, folder / "plan-latency.yaml", args.db)
    plan, fault_plan = load_plan(plan_path), load_plan(fault_plan_path)
    args.kill_rate = fault_plan.slo.throughput_rps
    settings = sl.Settings(
        quick=args.quick,
        threads=1,
        max_batch_size=64,
        batch_delay_ms=2.0,
        seq_len=args.seq,
        samples=args.samples,
        rates=[],
        concurrency=args.concurrency,
        warmup_s=args.warmup,
        window_s=args.window,
        drain_s=30.0,
        timeout_s=30.0,
        raw_warmup_s=args.raw_warmup,
        raw_window_s=args.raw_window,
        model=args.model,
    )
    payloads = sl.make_payloads(settings)
    inputs_path = folder / "inputs.npz"
    np.savez(inputs_path, **payloads.arrays)
    print("best raw configuration of the throughput plan's backend and precision:", flush=True)
    raw = best_raw(plan, inputs_path, args.raw_warmup, args.raw_window)
    served = measure_throughput(plan_path, plan, payloads, args, folder)
    overload, kill, killed, restarts = measure_faults(fault_plan_path, fault_plan, payloads, args, folder)
    text = report(plan, fault_plan, raw, served, overload, kill, killed, restarts, args)
    print(text)
    if args.md:
        args.md.write_text(text)
    target = 2 * fault_plan.expected.p99_ms if fault_plan.expected.p99_ms else float("inf")
    best = max(r["samples_per_s"] for r in raw)
    failures = [
        what
        for what, bad in (
            ("overload lost accepted requests", overload.lost > 0),
            ("overload p99 above 2x the plan's p99", (overload.run.get("p99_ms") or 0) > target),
            ("memory grew in the second half of the overload", overload.memory_growth_mb > 50),
            ("a killed worker lost accepted requests", kill.lost > 0),
            ("no worker was killed", not killed),
            ("served below 90% of the best raw throughput", served["run"].get("throughput_rps", 0) < 0.9 * best),
        )
        if bad
    ]
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

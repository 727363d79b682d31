"""hwfit on a Ray cluster, on this one machine: a sweep's wall time on one node and on two, and the
serving row of `hwfit serve --ray` beside `hwfit serve` and Ray Serve (hwfit's export), same model.

Both Ray "nodes" are processes of THIS machine and share its cores: a two-node sweep cannot be
faster than the cores allow, so the sweep rows show Ray's scheduling overhead and the driver's
placement, not a speed-up. A real cluster's nodes have their own cores.

The cluster: a head labelled `head` and a worker labelled `worker`, 2 logical CPUs each, on 127.0.0.1
(ray.cluster_utils.Cluster), started and stopped by this script. The model is the built-in CNN
(digits, 8x8). Sweep: ONNX Runtime fp32 and int8-dynamic, 1 thread, batches 1 and 8, `--budget`
measuring seconds per point, fresh runs in a temporary store. Serving: one replica of
ort/cpu/fp32/b8/t1 (batching delay 2 ms) per server, each server alone, loaded by bench/_load.py
(`hwfit load`'s client, a process of its own) in a closed loop of `--concurrency` clients for
`--window` seconds after a 2 s warm-up, KServe v2 JSON to 127.0.0.1.

    python bench/cluster_sweep.py [--budget 1] [--window 10] [--concurrency 8] [--md out.md]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
try:
    import hwfit  # noqa: F401 - only checks that hwfit is installed; else the checkout is put on sys.path
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from hwfit.cluster.connect import loopback_only  # noqa: E402 - after the sys.path fallback above

loopback_only()  # before Ray is imported: every address on 127.0.0.1

from serve_load import run_load, stop_process_tree  # noqa: E402 - bench/ is sys.path[0]; after loopback_only

MODEL = "cnn"
LOAD_AT_START = os.getloadavg()[0]
NODE_CPUS = 2


class Quiet:
    """A SweepObserver that says nothing (the bench prints its own table) and notes when the points
    start: after the ceilings (measured per run on one machine, per node beforehand on the cluster)."""

    def __init__(self):
        self.reference_at: float | None = None

    def planned(self, total_points):
        pass

    def stage(self, text):
        if "reference" in text:
            self.reference_at = time.perf_counter()

    def point_started(self, variant):
        pass

    def point_progress(self, variant, message):
        pass

    def family_finished(self, family, skipped_points):
        pass

    def point_finished(self, variant, measurement, reused):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_cluster():
    from ray.cluster_utils import Cluster

    dashboard_port = free_port()
    cluster = Cluster(initialize_head=False)
    common = {"num_cpus": NODE_CPUS, "node_ip_address": "127.0.0.1", "object_store_memory": 80 * 2**20}
    cluster.add_node(
        resources={"node:head": 1},
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        dashboard_port=dashboard_port,
        **common,
    )
    cluster.add_node(resources={"node:worker": 1}, **common)
    cluster.wait_for_nodes()
    return cluster, f"http://127.0.0.1:{dashboard_port}"


# --- sweeps -------------------------------------------------------------------------------------


def sweep_rows(address: str, budget_s: float) -> list[dict]:
    from hwfit.cluster import cluster_inventory, cluster_sweep
    from hwfit.models import load_model
    from hwfit.profile import build_spec, sweep
    from hwfit.store import open_store

    model = load_model(MODEL)
    spec = build_spec(
        {
            "backends": ["ort"],
            "precisions": ["fp32", "int8-dynamic"],
            "threads": [1],
            "batch_sizes": [1, 8],
            "budget_s": budget_s,
            "warmup_s": 0.5,
        }
    )
    nodes = cluster_inventory(address, ceilings=True)  # measured once per node, before any timing
    head = [node for node in nodes if "head" in node.labels]
    rows = []
    with tempfile.TemporaryDirectory() as folder, open_store(Path(folder) / "bench.db") as store:
        started, observer = time.perf_counter(), Quiet()
        result = sweep(model, spec, store, observer, fresh=True)
        rows.append(_sweep_row("no Ray (profile.sweep, this process)", started, observer, result, store))
        for label, inventory in (("Ray, 1 node (head)", head), ("Ray, 2 nodes (head + worker)", nodes)):
            started, observer = time.perf_counter(), Quiet()
            result, _ = cluster_sweep(model, spec, store, observer, address, fresh=True, inventory=inventory)
            rows.append(_sweep_row(label, started, observer, result, store))
    return rows


def _sweep_row(label: str, started: float, observer: Quiet, result, store) -> dict:
    ended = time.perf_counter()
    wall_s = ended - started
    points = store.measurements(result.run_id)
    measuring_s = sum(point.wall_s or 0.0 for point in points)
    on = {}
    for point in points:
        node = point.details.get("node", {}).get("label", "here")
        on[node] = on.get(node, 0) + 1
    return {
        "where": label,
        "points": result.measured,
        "wall_s": round(wall_s, 1),
        "points_wall_s": round(ended - (observer.reference_at or started), 1),
        "point_processes_s": round(measuring_s, 1),
        "per_node": ", ".join(f"{node}: {count}" for node, count in sorted(on.items())),
        "statuses": ", ".join(sorted({point.status for point in points})),
    }


# --- serving ------------------------------------------------------------------------------------


def serving_plan(node_group: str | None):
    from hwfit.models import load_model
    from hwfit.plan import parse_plan

    model = load_model(MODEL)
    pool = {
        "name": "main",
        "role": "primary",
        "variant": "ort/cpu/fp32/b8/t1",
        "backend": "ort",
        "device": "cpu",
        "precision": "fp32",
        "threads": 1,
        "max_batch_size": 8,
        "max_queue_delay_ms": 2.0,
        "service_ms": {1: 0.2, 8: 0.6},
        "expected": {"rate_rps": 1, "capacity_rps": 1000, "how": "bench/cluster_sweep.py: not planned"},
        "node_group": node_group,
    }
    return parse_plan(
        {
            "model": {"name": model.name, "source": model.source, "hash": model.content_hash},
            "slo": {"latency_p99_ms": 1000, "throughput_rps": 1, "objective": "latency"},
            "feasible": True,
            "pools": [pool],
            "fallback": ["main"],
            "answer": "bench/cluster_sweep.py: one ORT fp32 CPU replica, max batch 8, 2 ms delay",
            "search": {"grid_size": 1, "measured": 0, "reused": 0, "method": "bench/cluster_sweep.py"},
        }
    )


def request_body() -> bytes:
    import numpy as np

    image = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    tensor = {"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": image.ravel().tolist()}
    return json.dumps({"inputs": [tensor]}).encode()


def wait_answering(url: str, body: bytes, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def load_spec(url: str, body: bytes, concurrency: int, window_s: float) -> dict:
    return {
        "url": url,
        "headers": {"Content-Type": "application/json"},
        "bodies_b64": [base64.b64encode(body).decode()],
        "mode": "closed",
        "concurrency": concurrency,
        "warmup_s": 2.0,
        "window_s": window_s,
        "max_requests": 200_000,
        "timeout_s": 10.0,
        "drain_s": 5.0,
    }


def serving_rows(address: str, dashboard: str, folder: Path, concurrency: int, window_s: float) -> list[dict]:
    body = request_body()
    rows = []
    for label, node_group, how in (
        ("hwfit serve", None, "hwfit serve plan.yaml: one worker process"),
        ("hwfit serve --ray", "worker", "hwfit serve plan.yaml --ray: the replica a Ray actor on node worker"),
    ):
        plan_path = serving_plan(node_group).save(folder / f"plan-{node_group or 'local'}.yaml")
        port = free_port()
        command = [str(Path(sys.executable).with_name("hwfit")), "serve", str(plan_path), "--http-port", str(port)]
        command += ["--grpc-port", "0"] + (["--ray", address] if node_group else [])
        rows.append(_serve_and_load(label, how, command, port, body, folder, concurrency, window_s))
    rows.append(_ray_serve_row(address, dashboard, folder, body, concurrency, window_s))
    return rows


def _serve_and_load(label, how, command, port, body, folder, concurrency, window_s) -> dict:
    log_path = folder / f"{label.replace(' ', '_')}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer"
    try:
        if not wait_answering(url, body, 180):
            return {"server": label, "how": how, "error": f"never answered; log: {log_path.read_text()[-400:]}"}
        return {"server": label, "how": how, **run_load(load_spec(url, body, concurrency, window_s), folder)}
    finally:
        stop_process_tree(process, grace_s=15)


def _ray_serve_row(address, dashboard, folder, body, concurrency, window_s) -> dict:
    from hwfit.cluster import export_ray_serve

    how = "serve deploy of hwfit plan --export ray-serve: KServe v2 ingress + one replica on node worker"
    port = free_port()
    config = export_ray_serve(serving_plan("worker"), folder / "ray-serve", port=port)
    serve_cli = str(Path(sys.executable).with_name("serve"))
    env = {**os.environ, "RAY_ADDRESS": address}
    deployed = subprocess.run(
        [serve_cli, "deploy", str(config), "--address", dashboard], capture_output=True, text=True, env=env
    )
    if deployed.returncode != 0:
        return {"server": "Ray Serve", "how": how, "error": deployed.stderr[-400:]}
    url = f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer"
    try:
        if not wait_answering(url, body, 180):
            return {"server": "Ray Serve", "how": how, "error": "never answered"}
        return {"server": "Ray Serve", "how": how, **run_load(load_spec(url, body, concurrency, window_s), folder)}
    finally:
        subprocess.run([serve_cli, "shutdown", "-y", "--address", dashboard], capture_output=True, env=env)


# --- tables -------------------------------------------------------------------------------------


def markdown(sweeps: list[dict], serving: list[dict], args, elapsed_s: float) -> str:
    import ray

    lines = [
        "# hwfit on a Ray cluster: sweep wall time on one node and two, and the serving row",
        "",
        f"- date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        f"- Ray {ray.__version__}; hwfit {hwfit_version()}; command: `python bench/cluster_sweep.py "
        f"--budget {args.budget:g} --window {args.window:g} --concurrency {args.concurrency}`",
        f"- total bench time: {elapsed_s:.0f} s; load average (1 min) at the start {LOAD_AT_START:.2f}, at the end "
        f"{os.getloadavg()[0]:.2f} (the machine is shared with other work: see bench/results/cluster.md)",
        "- **both Ray nodes are processes of this one machine and share its cores**: the two-node row "
        "shows Ray's scheduling overhead and the driver's placement, not a speed-up",
        "",
        "## Sweep (built-in cnn: ORT fp32 + int8-dynamic, 1 thread, batches 1 and 8, fresh runs)",
        "",
        "| where | points | wall s | wall s from the reference on | points' processes s | points per node | statuses |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for row in sweeps:
        lines.append(
            f"| {row['where']} | {row['points']} | {row['wall_s']} | {row['points_wall_s']} | "
            f"{row['point_processes_s']} | {row['per_node']} | {row['statuses']} |"
        )
    lines += [
        "",
        "wall s: the whole sweep call. On one machine it includes measuring the machine's ceilings (once per "
        "run); on the cluster they were measured once per node before any timing (the inventory), so compare "
        "the next column: from the fp32 reference (computed in a process on the driver) to the last point. "
        "points' processes s: the sum of each point's measuring process, as the store records it (on two "
        "nodes they overlap in time, on the same 2 cores).",
        "",
        f"## Serving (cnn, one ORT fp32 replica, max batch 8, 2 ms delay; closed loop, {args.concurrency} clients, "
        f"{args.window:g} s window)",
        "",
        "| server | how | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in serving:
        if "error" in row:
            lines.append(f"| {row['server']} | {row['how']} | - | - | - | {row['error'][:200]} |")
            continue
        lines.append(
            f"| {row['server']} | {row['how']} | {row['throughput_rps']:.0f} | {row['p50_ms']:.2f} | "
            f"{row['p99_ms']:.2f} | {row['errors']} |"
        )
    lines += [
        "",
        "The load generator (bench/_load.py) and every server shared the same 2 cores; req/s is what the "
        "whole machine gave, not what a node would.",
    ]
    return "\n".join(lines) + "\n"


def hwfit_version() -> str:
    import hwfit as package

    return package.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=1.0, help="measuring seconds per sweep point")
    parser.add_argument("--window", type=float, default=10.0, help="seconds of load per server")
    parser.add_argument("--concurrency", type=int, default=8, help="closed-loop clients")
    parser.add_argument("--md", type=Path, help="also write the tables here")
    parser.add_argument("--skip-serving", action="store_true", help="only the sweep rows")
    args = parser.parse_args()
    started = time.perf_counter()
    cluster, dashboard = start_cluster()
    import ray

    from hwfit.cluster import connect

    try:
        connect(cluster.address)
        print(f"cluster up at {cluster.address}; sweeping ...", file=sys.stderr)
        sweeps = sweep_rows(cluster.address, args.budget)
        serving = []
        if not args.skip_serving:
            print("serving ...", file=sys.stderr)
            with tempfile.TemporaryDirectory() as folder:
                serving = serving_rows(cluster.address, dashboard, Path(folder), args.concurrency, args.window)
    finally:
        ray.shutdown()
        cluster.shutdown()
    text = markdown(sweeps, serving, args, time.perf_counter() - started)
    print(text)
    if args.md:
        args.md.write_text(text)


if __name__ == "__main__":
    main()

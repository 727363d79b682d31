"""The serving step of bench/gpu_check.sh: a one-pool plan for a model on a GPU variant (service
times measured at startup, like `hwfit serve MODEL`'s default plan, which is ORT on the CPU), then
`hwfit serve` on it, a bounded burst of KServe v2 requests to loopback, and /metrics scraped.

    python bench/gpu_serve_check.py --model cnn --variant torch/cuda:0/fp16/b32 --out OUT_DIR

Writes OUT_DIR/serve-plan.yaml, serve.log, metrics.txt and serve.json (requests sent/answered,
latency percentiles, and whether the GPU's series are in /metrics). Exit 0 when every request was
answered and cuda:0 appears in /metrics.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REQUESTS = 200


def write_plan(model_name: str, variant_key: str, path: Path) -> None:
    from hwfit.core import Variant
    from hwfit.models import load_model
    from hwfit.plan import parse_plan
    from hwfit.serve.scheduler.default_plan import measure_service_ms
    from hwfit.simulate import approximate_p99_ms, capacity_rps

    model = load_model(model_name)
    variant = Variant.parse(variant_key)
    batch = variant.batch_size
    service_ms = measure_service_ms(model, variant, (1, batch))
    capacity = capacity_rps(service_ms, 1, batch)
    rate = 0.7 * capacity
    expected = {
        "rate_rps": rate,
        "capacity_rps": capacity,
        "p99_ms": approximate_p99_ms(service_ms, 1, batch, 2.0, rate),
        "utilization": 0.7,
        "how": "approximation (queueing model) from service times measured at startup (bench/gpu_serve_check.py)",
    }
    name = f"{variant.device.replace(':', '')}-{variant.backend}-{variant.precision}"
    pool = {
        "name": name,
        "role": "primary",
        "variant": variant.key,
        "backend": variant.backend,
        "device": variant.device,
        "precision": variant.precision,
        "threads": variant.threads,
        "max_batch_size": batch,
        "max_queue_delay_ms": 2.0,
        "service_ms": service_ms,
        "expected": expected,
        "measured_from": [variant.key],
    }
    plan = parse_plan(
        {
            "model": {"name": model.name, "source": model.source, "hash": model.content_hash},
            "slo": {
                "latency_p99_ms": 1000.0,
                "throughput_rps": rate,
                "objective": "latency",
                "devices": {variant.device: {"count": 1}},
            },
            "feasible": True,
            "pools": [pool],
            "fallback": [name],
            "expected": expected,
            "answer": f"device check: {model.name} on {variant.key}",
            "assumptions": ["written by bench/gpu_serve_check.py for the device check, not searched against an SLO"],
            "search": {"grid_size": 1, "measured": 1, "reused": 0, "method": "device check (no search)"},
        },
        source=str(path),
    )
    plan.save(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"hwfit serve exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"hwfit serve was not ready within {timeout_s:.0f} s")


def infer(base: str, model_name: str, image: list) -> float:
    body = {"inputs": [{"name": "image", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": image}]}
    request = urllib.request.Request(
        f"{base}/v2/models/{model_name}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10) as response:
        json.loads(response.read())
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn", help="a built-in with one 1x8x8 image input (the CNN)")
    parser.add_argument("--variant", default="torch/cuda:0/fp16/b32")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--hwfit", default="hwfit", help="the hwfit command to run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    plan_path = args.out / "serve-plan.yaml"
    write_plan(args.model, args.variant, plan_path)
    http_port, grpc_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    log = (args.out / "serve.log").open("w")
    command = [args.hwfit, "serve", str(plan_path), "--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    result: dict = {"command": " ".join(command), "variant": args.variant, "requests": REQUESTS}
    try:
        wait_ready(base, process, timeout_s=120)
        image = [0.5] * 64
        latencies = [infer(base, args.model, image) for _ in range(REQUESTS)]
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        (args.out / "metrics.txt").write_text(metrics)
        gpu_lines = [line for line in metrics.splitlines() if 'device="cuda:0"' in line or line.startswith("nv_gpu_")]
        result.update(
            answered=len(latencies),
            p50_ms=statistics.median(latencies) * 1000,
            p99_ms=sorted(latencies)[int(0.99 * (len(latencies) - 1))] * 1000,
            gpu_metric_lines=gpu_lines,
        )
    except Exception as error:  # the step's log says what failed; the summary gets the line
        result["error"] = f"{type(error).__name__}: {error}"
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C: drain and stop
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
    (args.out / "serve.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "gpu_metric_lines"}, indent=2))
    ok = result.get("answered") == REQUESTS and bool(result.get("gpu_metric_lines"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

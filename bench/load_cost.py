"""What `hwfit load` itself costs: CPU time of the generator's process per request, at several open
loop rates and closed loop concurrencies, JSON and binary tensors. The simulator models this cost
(the generator shares the cores with the server it measures), so it is measured, not assumed.

`hwfit serve` runs the small ONNX model (y = relu(x @ W), microseconds of compute) on ONNX Runtime
in its own process; `hwfit load` runs in another, as users run it, and reports its own CPU time
while sending (`client_cpu_ms_per_request`: process CPU time / requests sent, warm-up included).

    python bench/load_cost.py [--quick] [--md out.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.serve.emulation writes the small model

from tests.serve.emulation import write_small_onnx_model  # noqa: E402 - after the path above

HWFIT = [sys.executable, "-c", "from hwfit.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 120.0) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"hwfit serve exited with status {process.returncode}")
        try:
            with opener.open(url + "/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"hwfit serve not ready after {timeout_s:.0f} s")


def run_load(url: str, args: list[str], duration_s: float) -> dict:
    command = [*HWFIT, "load", url, *args, "--duration", f"{duration_s:g}", "--warmup", "1", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60)
    if done.returncode != 0:
        raise SystemExit(f"`hwfit load {' '.join(args)}` failed: {done.stderr.strip()[-400:]}")
    return json.loads(done.stdout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per run instead of 8")
    parser.add_argument("--md", type=Path, help="also write the table here")
    options = parser.parse_args(argv)
    duration_s = 3.0 if options.quick else 8.0
    modes = [
        ("open, poisson:50", ["--traffic", "poisson:50"]),
        ("open, poisson:200", ["--traffic", "poisson:200"]),
        ("open, poisson:400", ["--traffic", "poisson:400"]),
        ("closed, 1 client", ["--concurrency", "1"]),
        ("closed, 8 clients", ["--concurrency", "8"]),
    ]
    runs = [(name, extra, binary) for name, extra in modes for binary in (False, True)]
    folder = Path(tempfile.mkdtemp(prefix="load_cost-"))
    model = write_small_onnx_model(folder / "small.onnx")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*HWFIT, "serve", str(model), "--http-port", str(port), "--grpc-port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    rows = []
    try:
        wait_ready(url, server)
        for name, extra, binary in runs:
            result = run_load(url, extra + (["--binary"] if binary else []), duration_s)
            s = result["summary"]
            rows.append(
                f"| {name} | {'binary' if binary else 'JSON'} | {s['requests']} | {s['answered_rps']:.1f} | "
                f"{s['p50_ms']:.2f} | {s['client_cpu_s']:.2f} | {s['client_cpu_ms_per_request']:.3f} | "
                f"{s['late']} |"
            )
            print(rows[-1], flush=True)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    lines = [
        "# bench/load_cost.py" + (" --quick" if options.quick else ""),
        "",
        "| load | tensors | requests | answered req/s | p50 ms | generator CPU s | generator CPU ms/request | late |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"- Each run: `hwfit load` in its own process, {duration_s:g} s (1 s warm-up), against `hwfit serve` of "
        "the small ONNX model (ORT fp32, CPU) in another process, both on 127.0.0.1.",
        "- generator CPU: `time.process_time()` of the load process around the sending (not its start-up, "
        "imports or the model metadata request); ms/request = that / requests sent, warm-up included.",
        f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; shared with other work while it ran, so take the figures as upper bounds.",
    ]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if options.md:
        options.md.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The raw backend: the same ORT session the servers run, timed directly in a loop at each batch
size (no server, no HTTP). Prints one JSON object: per batch size, the measured window, batches run,
median batch latency and samples/s (samples run / wall time of the window).

    python bench/serve_peers/raw_backend.py INPUTS.npz --batches 1,2,4,8,16 --warmup 1 --window 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from _common import io_names, make_session, settings


def time_batch(session, output_name, feed, warmup_s: float, window_s: float) -> dict:
    end_warmup = time.perf_counter() + warmup_s
    while time.perf_counter() < end_warmup:
        session.run([output_name], feed)
    latencies = []
    start = time.perf_counter()
    while time.perf_counter() - start < window_s:
        t0 = time.perf_counter()
        session.run([output_name], feed)
        latencies.append(time.perf_counter() - t0)
    wall_s = time.perf_counter() - start
    batch_size = next(iter(feed.values())).shape[0]
    return {
        "batch_size": batch_size,
        "batches": len(latencies),
        "window_s": round(wall_s, 3),
        "p50_ms": statistics.median(latencies) * 1000.0,
        "samples_per_s": batch_size * len(latencies) / wall_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("inputs")
    parser.add_argument("--batches", required=True)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=3.0)
    args = parser.parse_args()
    session = make_session(settings())
    input_names, output_name = io_names(session)
    data = np.load(args.inputs)
    rows = []
    for batch_size in [int(b) for b in args.batches.split(",")]:
        # cycle through the same sentences the servers get, batch_size at a time
        feed = {name: np.resize(data[name], (batch_size, data[name].shape[1])) for name in input_names}
        rows.append(time_batch(session, output_name, feed, args.warmup, args.window))
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()

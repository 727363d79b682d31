"""One replica of any hwfit variant timed raw (no server, no HTTP) through hwfit's own backend, batch
size after batch size in fixed time slots that start at a given wall-clock time, so that K copies
started together measure K replicas running side by side. Prints one JSON object: per batch size,
batches run in the slot's window and samples/s. Runs in hwfit's venv.

    python bench/serve_peers/raw_variant.py INPUTS.npz --model minilm --backend ort --precision fp32 \
        --threads 1 --batches 1,8,32 --start-at UNIX_TIME --warmup 1 --window 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("inputs")
    parser.add_argument("--model", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", required=True)
    parser.add_argument("--knobs", default="{}", help="JSON object of backend knobs")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--batches", required=True)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=4.0)
    parser.add_argument(
        "--gap",
        type=float,
        default=2.0,
        help="idle seconds between slots (a slot's last batch may overrun its window by up to one batch time)",
    )
    args = parser.parse_args()

    from hwfit.backends import load_variant
    from hwfit.core import Variant
    from hwfit.models import load_model

    model = load_model(args.model)
    data = np.load(args.inputs)
    loaded = []
    for batch_size in (int(b) for b in args.batches.split(",")):
        variant = Variant(
            args.backend,
            args.device,
            args.precision,
            batch_size,
            threads=args.threads,
            knobs=tuple(json.loads(args.knobs).items()),
        )
        runner = load_variant(model, variant)
        feed = {name: np.resize(data[name], (batch_size, data[name].shape[1])) for name in data.files}
        runner.run(feed)  # validated once; the loop runs unchecked
        loaded.append((batch_size, runner, feed))
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    rows = []
    slot_s = args.warmup + args.window + args.gap
    for slot, (batch_size, runner, feed) in enumerate(loaded):
        begin = start_at + slot * slot_s
        late_s = max(0.0, time.time() - begin)  # the last slot's final batch overran into this one
        time.sleep(max(0.0, begin - time.time()))
        end_warmup = time.perf_counter() + args.warmup
        while time.perf_counter() < end_warmup:
            runner.run_unchecked(feed)
        batches, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.window:
            runner.run_unchecked(feed)
            batches += 1
        wall_s = time.perf_counter() - start
        rows.append(
            {
                "batch_size": batch_size,
                "batches": batches,
                "window_s": round(wall_s, 3),
                "samples_per_s": batch_size * batches / wall_s,
                "late_start_s": round(late_s, 3),
            }
        )
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()

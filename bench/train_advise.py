"""`hwfit train advise` on this machine: the built-in LM and CNN, and a deliberately data-starved
loader (the CNN whose dataset items take 2 ms each to prepare, `cnn-slow-data`).

For each target: the baseline's measured breakdown (data wait, copy, forward, backward, optimizer,
rest) and its diagnosis, then baseline vs each change vs the kept changes together, each change
in its own process for the same `--steps` steps (same seeds, same data order), with the loss check.
The starved case must be diagnosed data-bound and fixed by the loader change; bf16 autocast on this
CPU is measured like every other change.

    python bench/train_advise.py [--steps 20] [--warmup 3] [--targets lm,cnn,cnn-slow-data] [--md out.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwfit.hardware import discover_cpu  # noqa: E402 - after the path above
from hwfit.train import advise  # noqa: E402 - after the path above


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--targets", default="cnn-slow-data,cnn,lm")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--repeats", type=int, default=3, help="Processes per configuration; the fastest counts.")
    parser.add_argument("--md", type=Path, default=None, help="Write the tables to this Markdown file too.")
    parser.add_argument("--note", default="", help="A sentence about the machine's load while this ran.")
    args = parser.parse_args()

    started = time.perf_counter()
    sections = []
    for target in args.targets.split(","):
        t0 = time.perf_counter()
        result = advise(
            target,
            steps=args.steps,
            warmup=args.warmup,
            timeout_s=args.timeout,
            repeats=args.repeats,
            progress=lambda name, done, total: print(f"  [{done}/{total}] {name}", file=sys.stderr, flush=True),
        )
        section = _section(result, time.perf_counter() - t0)
        print(section, flush=True)
        sections.append(section)
    cpu = discover_cpu()
    header = (
        "# hwfit train advise: measured advice on this machine\n\n"
        f"{datetime.now(timezone.utc).date()}, {platform.machine()}, {cpu.model_name} "
        f"({cpu.usable_threads} usable cores; AVX-512 BF16: {'avx512_bf16' in cpu.flags}), "
        f"torch {_torch_version()}, `python bench/train_advise.py --steps {args.steps} --warmup {args.warmup} "
        f"--targets {args.targets} --repeats {args.repeats}` "
        f"({(time.perf_counter() - started) / 60:.1f} min in all). {args.note}\n\n"
        "Each row is the fastest of --repeats fresh processes running the same steps (same seeds, same data "
        "order); ms/step is the median warm step and samples/s the batch over it, measured (host clock; "
        "CPU work is synchronous); "
        "the phase table is the mean over the warm steps. Speedup is samples/s over the mean of the two baseline "
        "runs (first and last), whose difference is the noise. The loss column is "
        "the loss-parity rule on the losses of every step; batch-size and DDP rows change the samples per "
        "step, so their loss is not compared.\n"
    )
    text = header + "\n".join(sections)
    if args.md:
        args.md.write_text(text)
        print(f"written to {args.md}", file=sys.stderr)


def _section(result, seconds: float) -> str:
    base = result.baseline
    breakdown = base["breakdown"]
    lines = [
        f"\n## {result.target}: {base['description']}\n",
        f"Baseline: batch {base['batch_size']}, {breakdown['median_step_ms']:.1f} ms/step (median; mean "
        f"{breakdown['step_ms']:.1f}) "
        f"(second run {base['second_step_ms']:.1f} ms: noise {result.noise:.1%}), "
        f"{breakdown['samples_per_s']:.1f} samples/s over the mean step"
        + (f", {breakdown['tokens_per_s']:.0f} tokens/s" if breakdown["tokens_per_s"] else "")
        + f"; FLOPs/step {base['flops_per_step'] or 0:.3g} (torch.utils.flop_counter), "
        f"{(base['achieved_flops'] or 0) / 1e9:.2f} GFLOP/s achieved. {seconds / 60:.1f} min for this target.\n",
        "| phase | data | copy | forward | backward | optimizer | rest | step |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        "| ms/step | "
        + " | ".join(f"{breakdown['phases_ms'][p]:.2f}" for p in ("data", "copy", "forward", "backward", "optimizer"))
        + f" | {breakdown['rest_ms']:.2f} | {breakdown['step_ms']:.2f} |",
        "| share | "
        + " | ".join(f"{breakdown['shares'][p]:.0%}" for p in ("data", "copy", "forward", "backward", "optimizer"))
        + f" | {breakdown['shares']['rest']:.0%} | 100% |",
        f"\nDiagnosis (from the measured breakdown): **{breakdown['diagnosis']}**.\n",
        "| change | status | ms/step | samples/s | speedup | loss check | detail |",
        "|---|---|---:|---:|---:|---|---|",
        f"| baseline | baseline | {breakdown['median_step_ms']:.1f} | "
        f"{base['batch_size'] / breakdown['median_step_ms'] * 1e3:.1f} | 1.00x | — | "
        f"final loss {base['losses'][-1]:.4f} |",
    ]
    rows = list(result.results) + ([result.combination] if result.combination else [])
    for row in rows:
        check = row.loss_check
        loss = "—" if not check else ("ok" if check["ok"] else "**moved**")
        speed = f"{row.speedup:.2f}x" if row.speedup else "—"
        step = f"{row.step_ms:.1f}" if row.step_ms else "—"
        rate = f"{row.samples_per_s:.1f}" if row.samples_per_s else "—"
        name = f"**{row.name}**" if row.status == "combined" else row.name
        lines.append(f"| {name} | {row.status} | {step} | {rate} | {speed} | {loss} | {row.reason} |")
    lines.append(f"\nRule: {result.rule}.")
    ranked = result.ranked()
    if ranked:
        lines.append("\nRanked, with the lines to change:\n")
        for rank, r in enumerate(ranked, start=1):
            lines.append(f"{rank}. {r.name}: {r.speedup:.2f}x\n\n   ```python")
            lines.extend(f"   {line}" for line in r.code.splitlines())
            lines.append("   ```")
    return "\n".join(lines)


def _torch_version() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

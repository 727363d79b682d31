"""Do hwfit's measured CPU ceilings reach what plain numpy reaches on the same machine, in the same run?

    python bench/ceilings.py [--markdown bench/results/ceilings-cpu.md]

Measures `measure_ceilings("cpu")`, then numpy's best fp32 matmul (several sizes, best of N) and
a plain numpy STREAM triad (naive `a[:] = b + s*c` and the out= variant) on arrays of the same
size, in rounds whose order alternates; prints a table of each side's best (and the per-round
ratios) and exits 1 if any hwfit figure is below 90% of numpy's.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

try:
    import hwfit  # noqa: F401 - only checks that hwfit is installed; else the checkout is put on sys.path
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwfit.hardware import Ceiling, discover_cpu, format_si, measure_ceilings
from hwfit.hardware.microbench import triad_array_bytes

THRESHOLD = 0.9
MATMUL_SIZES = (1024, 2048, 3072, 4096)
MATMUL_REPEATS = 5
TRIAD_REPEATS = 20


def best_seconds(run, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def numpy_matmul_best() -> tuple[float, str]:
    """Best fp32 np.matmul rate over several sizes, best of N each."""
    rates = {}
    rng = np.random.default_rng(1)
    for n in MATMUL_SIZES:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        out = np.empty((n, n), dtype=np.float32)
        np.matmul(a, b, out=out)  # warm-up
        rates[n] = 2.0 * n**3 / best_seconds(lambda a=a, b=b, out=out: np.matmul(a, b, out=out), MATMUL_REPEATS)
    best_n = max(rates, key=rates.get)
    per_size = ", ".join(f"{n}: {format_si(rate, 'FLOP/s')}" for n, rate in rates.items())
    how = f"np.matmul fp32, n in {MATMUL_SIZES}, best of {MATMUL_REPEATS} each; best at n={best_n} ({per_size})"
    return rates[best_n], how


def numpy_triad_best(elements: int) -> tuple[float, str]:
    """Best of a naive numpy triad and the out= variant, counted as STREAM does (3 x 8 B/element)."""
    a = np.zeros(elements)
    b = np.full(elements, 1.0)
    c = np.full(elements, 2.0)
    scalar = 3.0

    def naive() -> None:
        a[:] = b + scalar * c

    def with_out() -> None:
        np.multiply(c, scalar, out=a)
        np.add(a, b, out=a)

    moved = 3 * 8 * elements
    rates = {}
    for name, run in (("a[:] = b + s*c", naive), ("np.multiply/np.add out=", with_out)):
        run()
        rates[name] = moved / best_seconds(run, TRIAD_REPEATS)
    best_name = max(rates, key=rates.get)
    per_variant = "; ".join(f"{name}: {format_si(rate, 'B/s')}" for name, rate in rates.items())
    how = (
        f"numpy triad on {elements:,} float64 elements per array, best of {TRIAD_REPEATS}; "
        f"best: {best_name} ({per_variant})"
    )
    return rates[best_name], how


def numpy_round(triad_elements: int) -> dict[str, tuple[float, str]]:
    """numpy's figures for the metrics it has a counterpart for."""
    return {"matmul fp32": numpy_matmul_best(), "mem_bandwidth": numpy_triad_best(triad_elements)}


def label(ceiling: Ceiling) -> str:
    return f"matmul {ceiling.dtype}" if ceiling.metric == "matmul_flops" else ceiling.metric


def merge_rounds(hwfit_rounds: list[list[Ceiling]], numpy_rounds: list[dict[str, tuple[float, str]]]) -> list[dict]:
    """Per metric: each side's best over all rounds, and the per-round ratios to show the noise.

    The machine is shared: a neighbour can take a core for a whole phase and halve one side's
    figure. Alternating the order each round and keeping each side's best cancels that out.
    """
    rows: dict[str, dict] = {}
    for number, ceilings in enumerate(hwfit_rounds):
        for ceiling in ceilings:
            name = label(ceiling)
            row = rows.setdefault(
                name,
                {
                    "metric": name,
                    "hwfit": 0.0,
                    "unit": ceiling.unit,
                    "hwfit_how": "",
                    "numpy": None,
                    "numpy_how": "no numpy counterpart (numpy has no bf16/fp16 BLAS)",
                    "round_ratios": [],
                },
            )
            if ceiling.value > row["hwfit"]:
                row["hwfit"], row["hwfit_how"] = ceiling.value, ceiling.method
            if name in numpy_rounds[number]:
                numpy_value, numpy_how = numpy_rounds[number][name]
                row["round_ratios"].append(ceiling.value / numpy_value)
                if row["numpy"] is None or numpy_value > row["numpy"]:
                    row["numpy"], row["numpy_how"] = numpy_value, numpy_how
    count = len(hwfit_rounds)
    for row in rows.values():
        row["hwfit_how"] = f"best of {count} rounds; in the best: {row['hwfit_how']}"
        if row["numpy"]:
            row["numpy_how"] = f"best of {count} rounds; in the best: {row['numpy_how']}"
    return list(rows.values())


def ratio_text(row: dict) -> str:
    if not row["numpy"]:
        return "—"
    per_round = ", ".join(f"{ratio:.2f}" for ratio in row["round_ratios"])
    return f"{row['hwfit'] / row['numpy']:.3f} (rounds: {per_round})"


def print_table(console: Console, rows: list[dict], cpu_name: str) -> None:
    table = Table(title=f"hwfit ceilings vs numpy — {cpu_name}", title_justify="left", show_lines=True)
    for column in (
        "metric",
        "hwfit measured",
        "numpy best",
        "hwfit / numpy",
        "how hwfit measured",
        "how numpy measured",
    ):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["metric"],
            format_si(row["hwfit"], row["unit"]),
            format_si(row["numpy"], row["unit"]),
            ratio_text(row),
            row["hwfit_how"],
            row["numpy_how"],
        )
    console.print(table)


def markdown(rows: list[dict], cpu_name: str, load: str) -> str:
    lines = [
        "# hwfit CPU ceilings vs numpy",
        "",
        f"Machine: {cpu_name}. Produced by `bench/ceilings.py --markdown`; "
        f"hwfit fails the check when any figure is below {THRESHOLD:.0%} of numpy's in the same run.",
        f"The machine is shared; {load}.",
        "",
        "| metric | hwfit measured | numpy best | hwfit / numpy | how hwfit measured | how numpy measured |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            row["metric"],
            format_si(row["hwfit"], row["unit"]),
            format_si(row["numpy"], row["unit"]),
            ratio_text(row),
            row["hwfit_how"],
            row["numpy_how"],
        ]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def describe_cpu() -> str:
    cpu = discover_cpu()
    return (
        f"{cpu.model_name} ({cpu.vendor} family {cpu.family} model {cpu.model}), {cpu.physical_cores} cores / "
        f"{cpu.logical_threads} threads, L3 {(cpu.last_level_cache_bytes or 0) // 2**20} MiB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds of hwfit and numpy, order alternating (default 5)"
    )
    args = parser.parse_args()
    console = Console()
    cpu_name = describe_cpu()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    triad_elements = triad_array_bytes(discover_cpu())[0] // 8  # the same arrays hwfit's triad uses
    hwfit_rounds: list[list[Ceiling]] = []
    numpy_rounds: list[dict[str, tuple[float, str]]] = []
    with console.status("measuring…") as status:
        for number in range(args.rounds):
            # Alternate who goes first, so a neighbour's burst does not always hit the same side.
            sides = ("hwfit", "numpy") if number % 2 == 0 else ("numpy", "hwfit")
            for side in sides:
                status.update(f"round {number + 1}/{args.rounds}: {side}…")
                if side == "hwfit":
                    hwfit_rounds.append(measure_ceilings("cpu"))
                else:
                    numpy_rounds.append(numpy_round(triad_elements))
    rows = merge_rounds(hwfit_rounds, numpy_rounds)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    # Other processes on the cores halve these figures; say how busy the machine was.
    load = (
        f"1-minute load average {load_before:.2f} before and {load_after:.2f} after the run "
        f"(this run's own threads count towards the second)"
        if load_before is not None and load_after is not None
        else "load average unknown on this platform"
    )
    print_table(console, rows, cpu_name)
    console.print(load)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(rows, cpu_name, load))
    failing = [row["metric"] for row in rows if row["numpy"] and row["hwfit"] < THRESHOLD * row["numpy"]]
    if failing:
        console.print(f"[red]FAIL[/]: hwfit below {THRESHOLD:.0%} of numpy for {', '.join(failing)}")
        return 1
    console.print(f"[green]OK[/]: every hwfit ceiling with a numpy counterpart is at least {THRESHOLD:.0%} of numpy's")
    return 0


if __name__ == "__main__":
    sys.exit(main())

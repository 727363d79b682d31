"""`hwfit train profile|advise TARGET`: where a training step's time goes, and which change makes it
faster while it still learns, measured on the user's own model."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from hwfit.cli._app import app, split_values
from hwfit.core import format_si

train_app = typer.Typer(
    help="Profile a training step (data, copy, forward, backward, optimizer) and measure which change "
    "makes it faster while it still learns.",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")

TARGET_HELP = (
    "A built-in (lm, cnn, cnn-slow-data) or package.module:factory returning model, optimizer, loss_fn and data "
    "(see examples/train_factory.py)."
)


def _importable_here() -> None:
    """`mymodule:factory` in the current folder imports, as `python -m` would find it (and the
    experiments' processes inherit the path)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _progress(disabled: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=disabled,
        transient=True,
    )


@train_app.command("profile")
def profile(
    target: str = typer.Argument(..., help=TARGET_HELP),
    steps: int = typer.Option(20, "--steps", help="Optimizer steps to run (the first --warmup are not averaged)."),
    warmup: int = typer.Option(3, "--warmup", help="Steps left out of the breakdown (allocation, caches, compile)."),
    device: str = typer.Option("cpu", "--device", "-d", help="cpu or cuda:N."),
    amp: str | None = typer.Option(None, "--amp", help="Autocast precision: bf16 (CPU, GPU) or fp16 (GPU)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Override the target's batch size."),
    workers: int = typer.Option(0, "--workers", help="DataLoader num_workers."),
    trace: Path | None = typer.Option(
        None, "--trace", help="Write a Chrome/Perfetto trace of 3 steps (after 1 skipped and 1 warm-up) to this file."
    ),
    ceiling: bool = typer.Option(
        True, "--ceiling/--no-ceiling", help="Measure this machine's matmul ceiling for MFU (a few seconds)."
    ),
    db: Path | None = typer.Option(None, "--db", help="Results database (default: ~/.cache/hwfit/results.db)."),
    store: bool = typer.Option(True, "--store/--no-store", help="Record the run in the results database."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON only."),
) -> None:
    """Run TARGET for --steps training steps and show where each warm step's time goes: data wait,
    host→device copy, forward, backward, optimizer and the rest; samples/s, tokens/s, FLOP/s and MFU,
    peak memory and energy.

    Example: hwfit train profile cnn-slow-data --steps 20
    """
    from hwfit.store import open_store
    from hwfit.train import Changes, run_training, save_profile, utilisation

    _importable_here()
    changes = Changes(amp=amp, batch_size=batch_size, num_workers=workers)
    with _progress(as_json) as progress:
        task = progress.add_task(f"training {target}", total=steps)
        result = run_training(
            target,
            changes,
            steps,
            warmup,
            device,
            trace=str(trace) if trace else None,
            on_step=lambda done, total: progress.update(task, completed=done),
        )
        progress.update(task, description="measuring the matmul ceiling" if ceiling else "done")
        data = result.to_dict()
        data["utilisation"] = utilisation(data, result.device, measure_ceiling=ceiling)
    if trace:
        data["trace"] = str(trace)
    if store:
        with open_store(db) as results:
            data["run_id"] = save_profile(results, target, data, {"target": target, "steps": steps, "warmup": warmup})
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    _print_profile(Console(), data)


def _print_profile(out: Console, data: dict[str, Any]) -> None:
    breakdown = data["breakdown"]
    table = Table(title=f"{data['target']} on {data['device']}: mean of {breakdown['steps']} warm steps")
    table.add_column("phase")
    table.add_column("ms/step", justify="right")
    table.add_column("share", justify="right")
    for name, ms in breakdown["phases_ms"].items():
        table.add_row(name, f"{ms:.2f}", f"{breakdown['shares'][name]:.0%}")
    table.add_row("rest", f"{breakdown['rest_ms']:.2f}", f"{breakdown['shares']['rest']:.0%}")
    table.add_row("[bold]step[/]", f"[bold]{breakdown['step_ms']:.2f}[/]", "100%")
    out.print(table)
    out.print(f"timed with {breakdown['timer']}")
    out.print(f"[bold]{breakdown['diagnosis']}[/]")
    rates = f"{breakdown['samples_per_s']:.1f} samples/s" if breakdown["samples_per_s"] else "samples/s: —"
    if breakdown["tokens_per_s"]:
        rates += f", {breakdown['tokens_per_s']:.0f} tokens/s"
    out.print(f"{rates} (batch {data['batch_size']}, measured)")
    use = data["utilisation"]
    if use.get("achieved_flops"):
        line = f"{format_si(use['achieved_flops'], 'FLOP/s')} achieved ({use['flops_how']})"
        if use.get("mfu_of_ceiling") is not None:
            line += f"; MFU {use['mfu_of_ceiling']:.1%} of the measured {use['dtype']} ceiling "
            line += f"{format_si(use['ceiling_flops'], 'FLOP/s')}"
        if use.get("mfu_of_peak") is not None:
            peak = format_si(use["peak_flops"], "FLOP/s")
            line += f"; {use['mfu_of_peak']:.1%} of the peak {peak} ({use['peak_how']})"
        out.print(line)
    if data["peak_memory_bytes"]:
        out.print(f"peak memory {data['peak_memory_bytes'] / 2**20:.0f} MiB ({data['peak_memory_how']})")
    energy = data.get("energy")
    if energy and energy.get("joules_per_step") is not None:
        out.print(f"energy {energy['joules_per_step']:.2f} J/step, {energy['how']} ({energy['source']})")
    elif energy:
        out.print(f"energy: — ({energy.get('reason')})")
    if data.get("trace"):
        out.print(f"trace written to {data['trace']} (open in https://ui.perfetto.dev or chrome://tracing)")
    if data.get("run_id"):
        out.print(f"run {data['run_id']} recorded. Show again: hwfit results {data['run_id']}")


@train_app.command("advise")
def advise(
    target: str = typer.Argument(..., help=TARGET_HELP),
    steps: int = typer.Option(20, "--steps", help="Steps per experiment (the same steps for every one)."),
    warmup: int = typer.Option(3, "--warmup", help="Steps left out of each experiment's timing."),
    device: str = typer.Option("cpu", "--device", "-d", help="cpu or cuda:N."),
    tolerance: float = typer.Option(0.03, "--tolerance", help="Relative loss tolerance against the baseline."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds per experiment before it is killed."),
    only: list[str] | None = typer.Option(None, "--only", help="Run only experiments whose name contains these."),
    repeats: int = typer.Option(
        1, "--repeats", help="Fresh processes per configuration; the fastest counts (2-3 on a shared machine)."
    ),
    db: Path | None = typer.Option(None, "--db", help="Results database (default: ~/.cache/hwfit/results.db)."),
    as_json: bool = typer.Option(False, "--json", help="Print the advice as JSON only."),
) -> None:
    """Try each change (data loader workers, bf16/fp16 autocast, channels-last, torch.compile,
    activation checkpointing, fused optimizer, batch size, DDP) in its own process for --steps steps;
    keep it only if it is faster and the loss over the same steps stays within --tolerance; then
    measure the kept changes together. Results go to the store.

    Example: hwfit train advise cnn-slow-data --steps 20
    """
    from hwfit.store import open_store
    from hwfit.train import advise as run_advice
    from hwfit.train import save_advice

    _importable_here()
    with _progress(as_json) as progress:
        task = progress.add_task("baseline", total=1)

        def show(name: str, done: int, total: int) -> None:
            progress.update(task, description=name, completed=done, total=total)

        advice = run_advice(
            target, device, steps, warmup, timeout, split_values(only), progress=show, rtol=tolerance, repeats=repeats
        )
    with open_store(db) as results:
        arguments = {"target": target, "steps": steps, "tolerance": tolerance, "repeats": repeats}
        run_id = save_advice(results, target, advice, arguments)
    data = {**advice.to_dict(), "run_id": run_id}
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    _print_advice(Console(width=max(Console().width, 140)), data)


def _print_advice(out: Console, data: dict[str, Any]) -> None:
    base = data["baseline"]["breakdown"]
    out.print(f"[bold]{data['target']}[/] on {data['device']}: {data['baseline']['description']}")
    out.print(
        f"baseline {base['median_step_ms']:.1f} ms/step (median), {base['samples_per_s']:.1f} samples/s; "
        f"{base['diagnosis']}; "
        f"run-to-run noise {data['noise']:.1%}"
    )
    table = Table(title=f"each change alone, {data['steps']} steps in its own process")
    for column in ("change", "status", "ms/step", "samples/s", "speedup", "loss", "why"):
        table.add_column(column, justify="right" if column in ("ms/step", "samples/s", "speedup") else "left")
    rows = list(data["results"])
    if data["combination"]:
        rows.append(data["combination"])
    style = {"kept": "green", "combined": "bold green", "rejected": "yellow", "failed": "red", "skipped": "dim"}
    for row in rows:
        check = row.get("loss_check")
        loss = "—" if not check else ("ok" if check["ok"] else "moved")
        table.add_row(
            row["name"],
            f"[{style.get(row['status'], '')}]{row['status']}[/]",
            _num(row.get("step_ms"), 1),
            _num(row.get("samples_per_s"), 1),
            f"{row['speedup']:.2f}x" if row.get("speedup") else "—",
            loss,
            row["reason"],
        )
    out.print(table)
    out.print(f"rule: {data['rule']}")
    if data["ranked"]:
        out.print("\n[bold]what to change, fastest first[/]")
        by_name = {row["name"]: row for row in data["results"]}
        for rank, name in enumerate(data["ranked"], start=1):
            row = by_name[name]
            out.print(f"{rank}. {name}: {row['speedup']:.2f}x")
            for line in row["code"].splitlines():
                out.print(f"     {line}", markup=False, highlight=False)
    if data["combination"]:
        combo = data["combination"]
        speed = f"{combo['speedup']:.2f}x" if combo.get("speedup") else "—"
        out.print(f"\nkept changes together ({combo['name']}): {speed}, {combo['status']}: {combo['reason']}")
    out.print(f"\nrun {data['run_id']} recorded. Show again: hwfit results {data['run_id']}")


def _num(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"

"""`hwfit variants MODEL`: every backend × device × precision for a model, checked and timed briefly."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from hwfit.cli._app import app, split_values

STATUS_STYLE = {"ok": "green", "inaccurate": "yellow", "unavailable": "dim", "failed": "red"}


@app.command()
def variants(
    model: str = typer.Argument(
        "minilm",
        help="Built-in name (minilm, cnn, resnet50), .onnx/.pt/.pt2 file, "
        "Hugging Face folder, or package.module:factory.",
    ),
    backend: list[str] | None = typer.Option(None, "--backend", "-b", help="Backends to try (default: all)."),
    device: list[str] | None = typer.Option(None, "--device", "-d", help="Devices (default: all found)."),
    precision: list[str] | None = typer.Option(
        None, "--precision", "-p", help="fp32, fp16, bf16, int8-dynamic, int8-static."
    ),
    batch_size: int = typer.Option(8, "--batch", help="Batch size for the timing rounds."),
    threads: int | None = typer.Option(None, "--threads", help="Intra-op threads (default: all usable cores)."),
    shape: list[str] | None = typer.Option(None, "--shape", help="Input shape override, e.g. input_ids=B,64."),
    seconds: float = typer.Option(1.5, "--seconds", help="Timing time per variant, split in 3 rounds."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON only."),
    show_unavailable: bool = typer.Option(
        True, "--unavailable/--no-unavailable", help="List variants that cannot run, with why."
    ),
) -> None:
    """Run MODEL on every available backend, device and precision: accuracy against fp32 and a short timing.

    Example: hwfit variants minilm --batch 8 --seconds 2
    """
    from hwfit.backends import candidate_variants
    from hwfit.models import load_model, parse_shape_overrides
    from hwfit.profile import check_dict, quick_check

    err = Console(stderr=True)
    loaded = load_model(model, parse_shape_overrides(shape or []))
    candidates = candidate_variants(
        loaded, split_values(backend), split_values(device), split_values(precision), [batch_size], threads
    )
    runnable = sum(1 for _, reason in candidates if reason is None)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task(f"{loaded.name}: fp32 reference", total=runnable)

        def on_start(variant) -> None:
            progress.update(task, description=f"{loaded.name}: {variant.key}")

        measurements = quick_check(loaded, candidates, seconds=seconds, on_start=_advancing(progress, task, on_start))
    if as_json:
        print(
            json.dumps(
                {
                    "schema": "hwfit.variants/1",
                    "model": loaded.to_dict(),
                    "cost": loaded.cost(batch_size).to_dict(),
                    "results": [check_dict(m) for m in measurements],
                },
                indent=2,
            )
        )
        return
    out = Console(width=max(Console().width, 150))
    out.print(_table(loaded, measurements, batch_size))
    _print_reasons(out, measurements, show_unavailable)


def _advancing(progress, task, on_start):
    started = {"count": 0}

    def callback(variant) -> None:
        if started["count"]:
            progress.advance(task)
        started["count"] += 1
        on_start(variant)

    return callback


def _table(model, measurements, batch_size: int) -> Table:
    from hwfit.profile import check_verdict

    cost = model.cost(batch_size)
    table = Table(
        title=f"{model.name}: {model.description}\n"
        f"{cost.flops_per_sample / 1e9:.3g} GFLOP/sample (counted from the graph), weights "
        f"{cost.weight_bytes / 1e6:.1f} MB, batch {batch_size}. samples/s: best of 3 timing rounds; "
        "p50: median of all timed runs (measured); vs fp32: agreement with the fp32 reference on "
        f"{model.sample_inputs(1)[1]} inputs",
        title_justify="left",
    )
    for column, justify in [
        ("variant", "left"),
        ("status", "left"),
        ("samples/s", "right"),
        ("p50 ms", "right"),
        ("load s", "right"),
        ("convert s", "right"),
        ("compile s", "right"),
        ("vs fp32", "left"),
        ("task acc", "right"),
    ]:
        table.add_column(column, justify=justify, no_wrap=column == "variant")
    for measurement in measurements:
        verdict = check_verdict(measurement)
        if verdict != "unavailable":
            table.add_row(*_row(measurement, verdict))
    return table


def _seconds(value) -> str:
    return f"{value:.1f}" if value else ""


def _row(measurement, verdict: str) -> list[str]:
    p50_ms = measurement.latency.p50_ms if measurement.latency else None
    return [
        measurement.variant_key,
        f"[{STATUS_STYLE[verdict]}]{verdict}[/]",
        f"{measurement.samples_per_s:.1f}" if measurement.samples_per_s else "",
        f"{p50_ms:.2f}" if p50_ms else "",
        f"{measurement.load_s:.2f}" if measurement.load_s is not None else "",
        _seconds(measurement.convert_s),
        _seconds(measurement.compile_s),
        measurement.details.get("accuracy_verdict") or "",
        f"{measurement.task_accuracy:.3f}" if measurement.task_accuracy is not None else "",
    ]


def _print_reasons(out: Console, measurements, show_unavailable: bool) -> None:
    """Every variant that did not pass, with why: never silently dropped."""
    from hwfit.profile import check_reason, check_verdict

    for status, heading in (
        ("inaccurate", "Outside the accuracy tolerance"),
        ("failed", "Failed"),
        ("unavailable", "Cannot run here"),
    ):
        rows = [m for m in measurements if check_verdict(m) == status]
        if not rows or (status == "unavailable" and not show_unavailable):
            continue
        out.print(f"\n[bold]{heading}[/] ({len(rows)}):")
        for measurement in rows:
            out.print(
                f"  [{STATUS_STYLE[status]}]{measurement.variant_key}[/]: {check_reason(measurement)}", highlight=False
            )

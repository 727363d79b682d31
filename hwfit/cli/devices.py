"""`hwfit devices`: what this machine has, what its datasheets promise, and (with --bench) what it reaches."""

import json
import sys

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hwfit.cli._app import app, ray_option
from hwfit.core import is_gpu
from hwfit.hardware import (
    BenchmarkError,
    Ceiling,
    Figure,
    HardwareInventory,
    discover,
    format_si,
    measure_ceilings,
    torch_cuda_available,
)
from hwfit.telemetry import power_sources

_YES, _NO = "[green]✓[/]", "[red]✗[/]"


@app.command(
    epilog="Examples:\n\n"
    "  hwfit devices                      # tables: CPU, GPUs, runtimes, peak rates\n\n"
    "  hwfit devices --bench --quick      # add measured ceilings (a few seconds)\n\n"
    "  hwfit devices --bench --json > devices.json\n\n"
    "  hwfit devices --ray                # every node of the Ray cluster started here, node by node\n\n"
    "  hwfit devices --ray 10.0.0.5:6379 --bench --json"
)
def devices(
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON document (schema hwfit.devices/1) on stdout, nothing else."
    ),
    bench: bool = typer.Option(
        False, "--bench", help="Measure matmul FLOP/s, memory and copy bandwidth on every device."
    ),
    quick: bool = typer.Option(False, "--quick", help="With --bench: short runs (seconds, less exact)."),
    ray: str | None = ray_option("Each node's devices, discovered on that node,"),
) -> None:
    """Show this machine's CPU, NVIDIA GPUs, runtimes and peak rates; --bench measures real ceilings.

    Every number says how it was obtained: spec (catalog, with its source), computed (formula) or measured (method).
    """
    if quick and not bench:
        raise typer.BadParameter("--quick shortens the benchmarks; use it together with --bench", param_hint="--quick")
    if ray is not None:
        _cluster_devices(ray, json_output, bench, quick)
        return
    inventory = discover()
    ceilings, bench_notes = _run_benchmarks(inventory, quick) if bench else ([], [])
    sources = power_sources()
    if json_output:
        payload = inventory.to_dict()
        payload["power_sources"] = [source.to_dict() for source in sources]
        if bench:
            payload["ceilings"] = [ceiling.to_dict() for ceiling in ceilings]
            payload["bench_notes"] = bench_notes
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    console = Console(width=max(Console().width, 120))  # tables stay readable in logs and pipes
    console.print(_cpu_table(inventory))
    _print_gpus(console, inventory)
    console.print(_runtimes_table(inventory))
    for report in inventory.runtimes:
        for note in report.notes:
            console.print(f"[dim]{report.runtime}:[/] {escape(note)}")
    _print_peaks(console, inventory, ceilings, bench)
    console.print(_power_table(sources))
    for note in bench_notes:
        console.print(f"[yellow]note:[/] {escape(note)}")


def _cluster_devices(address: str, json_output: bool, bench: bool, quick: bool) -> None:
    """The cluster's inventory: one row per node (labels, cores, devices), ceilings with --bench."""
    from hwfit.cluster import cluster_inventory

    with Console(stderr=True).status(
        "asking every node of the cluster" + (" (measuring ceilings there, once per node)" if bench else "")
    ):
        nodes = cluster_inventory(address, ceilings=bench, quick=quick)
    if json_output:
        payload = {"schema": "hwfit.cluster-devices/1", "nodes": [node.to_dict() for node in nodes]}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    table = Table(title=f"Ray cluster: {len(nodes)} node(s), each discovered on itself", title_justify="left")
    for column in ("node", "labels", "address", "cores", "Ray CPU/GPU", "devices", "CPU", "GPUs", "ceilings"):
        table.add_column(column)
    for node in nodes:
        lent = f"{node.ray_resources.get('CPU', 0):g}/{node.ray_resources.get('GPU', 0):g}"
        table.add_row(
            node.node_id[:8],
            ", ".join(node.labels) or "-",
            node.address,
            str(len(node.cores)),
            lent,
            ", ".join(node.devices),
            escape(node.cpu_model or "?"),
            escape(", ".join(node.gpu_names) or "-"),
            _ceilings_text(node.ceilings),
        )
    Console(width=max(Console().width, 140)).print(table)
    print(
        "labels are the node's `node:<label>` resources (ray start --resources '{\"node:LABEL\": 1}'): "
        "SLO files name node groups by them."
    )


def _ceilings_text(ceilings: dict) -> str:
    parts = []
    for device, found in sorted(ceilings.items()):
        if "error" in found:
            parts.append(f"{device}: failed")
            continue
        fp32 = (found.get("matmul_flops") or {}).get("fp32")
        parts.append(f"{device}: {format_si(fp32, 'FLOP/s') if fp32 else '?'} fp32 (measured)")
    return "; ".join(parts) or "- (--bench measures them)"


# --- benchmarks --------------------------------------------------------------------------------


def _run_benchmarks(inventory: HardwareInventory, quick: bool) -> tuple[list[Ceiling], list[str]]:
    """Measure the CPU and each CUDA device; progress goes to stderr so stdout stays clean."""
    status_console = Console(stderr=True)
    ceilings: list[Ceiling] = []
    notes: list[str] = []
    targets = ["cpu", *(name for name in inventory.peaks if is_gpu(name))]
    cuda_ok, cuda_reason = torch_cuda_available() if len(targets) > 1 else (False, None)
    with status_console.status("benchmarking…") as status:
        for device in targets:
            if is_gpu(device) and not cuda_ok:
                notes.append(f"{device} not benchmarked: {cuda_reason}")
                continue
            try:
                ceilings.extend(measure_ceilings(device, quick=quick, progress=lambda text: status.update(f"{text}…")))
            except BenchmarkError as error:
                notes.append(f"{device} not benchmarked: {error}")
    return ceilings, notes


# --- tables ------------------------------------------------------------------------------------


def _power_table(sources) -> Table:
    """Where energy figures will come from: a hardware counter, integrated power, or an estimate."""
    table = Table(title="Energy sources (what `hwfit profile` reports J/sample from)", title_justify="left")
    for column in ("device", "source", "usable", "details"):
        table.add_column(column)
    for source in sources:
        table.add_row(source.device, source.kind, "✓" if source.usable else "✗", escape(source.reason or ""))
    return table


def _cpu_table(inventory: HardwareInventory) -> Table:
    cpu = inventory.cpu
    table = Table(title="CPU", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row(
        "model",
        escape(
            f"{cpu.model_name or '?'} ({cpu.vendor or '?'}, family {cpu.family}, model {cpu.model}, {cpu.architecture})"
        ),
    )
    table.add_row(
        "cores / threads",
        f"{cpu.sockets or '?'} socket(s), {cpu.physical_cores or '?'} cores, {cpu.logical_threads or '?'} threads "
        f"({cpu.usable_threads or '?'} usable by this process"
        + (f", cgroup limit {cpu.cgroup_cpu_limit:g} CPUs" if cpu.cgroup_cpu_limit else "")
        + ")",
    )
    table.add_row(
        "clocks", escape(f"base {_mhz(cpu.base_clock_mhz)}, max {_mhz(cpu.max_clock_mhz)} — {cpu.clock_source}")
    )
    table.add_row("ISA", "  ".join(f"{_YES if present else _NO} {name}" for name, present in cpu.isa.items()))
    table.add_row(
        "caches",
        ", ".join(f"{level.name} {_bytes(level.size_bytes)} x{level.instances}" for level in cpu.caches) or "unknown",
    )
    table.add_row("memory", f"{_bytes(cpu.memory_total_bytes)} total, {_bytes(cpu.memory_available_bytes)} available")
    table.add_row("NUMA nodes", str(cpu.numa_nodes or "unknown"))
    return table


def _print_gpus(console: Console, inventory: HardwareInventory) -> None:
    if not inventory.gpus:
        console.print(f"no NVIDIA GPU: {escape(inventory.gpu_reason or 'none found')}")
        return
    table = Table(title="NVIDIA GPUs", title_justify="left")
    for column in (
        "#",
        "name",
        "memory",
        "SMs",
        "cc",
        "SM clock",
        "mem clock",
        "power limit",
        "PCIe",
        "MIG",
        "driver / CUDA",
        "catalog",
    ):
        table.add_column(column)
    for gpu, spec in zip(inventory.gpus, inventory.gpu_specs):
        table.add_row(
            str(gpu.index),
            gpu.name,
            _bytes(gpu.memory_total_bytes),
            str(gpu.sm_count) if gpu.sm_count is not None else "?",
            gpu.compute_capability or "?",
            f"{_mhz(gpu.sm_clock_mhz)} / {_mhz(gpu.sm_clock_max_mhz)}",
            f"{_mhz(gpu.memory_clock_mhz)} / {_mhz(gpu.memory_clock_max_mhz)}",
            f"{gpu.power_limit_w:g} W" if gpu.power_limit_w is not None else "?",
            f"gen{gpu.pcie_gen} x{gpu.pcie_width} (max gen{gpu.pcie_max_gen} x{gpu.pcie_max_width})",
            {True: "on", False: "off", None: "?"}[gpu.mig_enabled],
            f"{gpu.driver_version or '?'} / {gpu.cuda_driver_version or '?'}",
            spec.key if spec else "[yellow]not in catalog[/]",
        )
    console.print(table)
    if inventory.gpu_reason:
        console.print(f"[yellow]note:[/] {escape(inventory.gpu_reason)}")


def _runtimes_table(inventory: HardwareInventory) -> Table:
    table = Table(title="Runtimes", title_justify="left")
    for column in ("runtime", "version", "device / provider", "usable", "details"):
        table.add_column(column)
    for report in inventory.runtimes:
        if not report.installed:
            table.add_row(report.runtime, "—", "—", _NO, escape(report.reason or ""))
            continue
        for device in report.devices:
            details = "; ".join(
                part
                for part in (
                    device.full_name,
                    ", ".join(device.precisions) if device.precisions else None,
                    device.reason,
                    f"install: {device.install}" if device.install else None,
                )
                if part
            )
            table.add_row(
                report.runtime, report.version or "?", device.name, _YES if device.usable else _NO, escape(details)
            )
    return table


def _print_peaks(console: Console, inventory: HardwareInventory, ceilings: list[Ceiling], bench: bool) -> None:
    """Peak (spec or computed) beside measured, with the long provenance strings as numbered notes."""
    table = Table(title="Peak rates" + (" and measured ceilings" if bench else ""), title_justify="left")
    for column in ("device", "quantity", "peak", "how", *(("measured", "measured/peak") if bench else ()), "notes"):
        table.add_column(column)
    notes: list[str] = []
    for device, dtype, peak, ceiling in _peak_rows(inventory, ceilings):
        refs = []
        if peak is not None:
            notes.append(f"{device} {dtype} peak: {peak.source}")
            refs.append(len(notes))
        if ceiling is not None:
            notes.append(f"{device} {dtype} measured: {ceiling.method}")
            refs.append(len(notes))
        if ceiling is not None and peak is not None and peak.how == "computed" and ceiling.value > peak.value:
            # Not an error: the formula's clock is the one the OS reports, and boost runs faster.
            notes.append(
                f"{device} {dtype}: measured exceeds the computed peak, so the cores ran above the clock in its formula"
            )
            refs.append(len(notes))
        row = [device, dtype, format_si(peak.value, peak.unit) if peak else "unknown", peak.how if peak else "—"]
        if bench:
            measured = format_si(ceiling.value, ceiling.unit) if ceiling else "—"
            ratio = f"{ceiling.value / peak.value:.2f}" if ceiling and peak else "—"
            row += [measured, ratio]
        row.append(" ".join(f"\\[{ref}]" for ref in refs))
        table.add_row(*row)
    console.print(table)
    for number, note in enumerate(notes, start=1):
        console.print(f"[dim]\\[{number}][/] {escape(note)}")


def _peak_rows(
    inventory: HardwareInventory, ceilings: list[Ceiling]
) -> list[tuple[str, str, Figure | None, Ceiling | None]]:
    """One row per (device, quantity): every catalog/computed peak, and every ceiling measured."""
    rows: list[tuple[str, str, Figure | None, Ceiling | None]] = []
    measured = {(c.device, c.dtype if c.metric == "matmul_flops" else c.metric): c for c in ceilings}
    for device, peaks in inventory.peaks.items():
        for dtype, figure in peaks.items():
            rows.append((device, dtype, figure, measured.pop((device, dtype), None)))
    for (device, quantity), ceiling in measured.items():
        rows.append((device, quantity, ceiling.spec, ceiling))
    return rows


def _mhz(value: float | None) -> str:
    return f"{value:g} MHz" if value else "?"


def _bytes(value: int | None) -> str:
    if value is None:
        return "?"
    for scale, unit in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if value >= scale:
            return f"{value / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{value} B"

"""`hwfit forecast PLAN --traffic SPEC`: devices needed now and as traffic grows, what-if hardware, and cost."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from hwfit.cli._app import app, split_values
from hwfit.cli.simulate import TRAFFIC_HELP


def _growth_rate(text: str | None) -> float | None:
    if text is None:
        return None
    raw = text.strip().removesuffix("/month").strip()
    try:
        value = float(raw.removesuffix("%")) / (100.0 if raw.endswith("%") else 1.0)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected a monthly growth such as 5% or 0.05") from None
    if not value > 0:
        raise typer.BadParameter(f"{text!r}: the monthly growth must be > 0")
    return value


def _factors(values: list[str] | None) -> tuple[float, ...] | None:
    items = split_values(values)
    if items is None:
        return None
    try:
        factors = tuple(float(item.removeprefix("x").removeprefix("×")) for item in items)
    except ValueError:
        raise typer.BadParameter(f"{items}: growth factors are numbers, e.g. --growth 1.5,2,3") from None
    if any(not f > 0 for f in factors):
        raise typer.BadParameter(f"{items}: growth factors must be > 0")
    return factors


@app.command(
    epilog="Examples:\n\n"
    "  hwfit forecast plan.yaml --traffic diurnal:200,20,1d\n\n"
    "  hwfit forecast plan.yaml --traffic poisson:80 --what-if h100-sxm,l4 --monthly-growth 8%\n\n"
    "  hwfit forecast plan.yaml --traffic trace:requests.csv --prices prices.yaml --years 3 --json"
)
def forecast(
    plan_file: Path = typer.Argument(..., help="A plan written by `hwfit plan`."),
    traffic: str | None = typer.Option(None, "--traffic", "-t", help=TRAFFIC_HELP),
    what_if: list[str] | None = typer.Option(
        None,
        "--what-if",
        help="Also estimate on: a catalog device key (h100-sxm, l4, ...), cpu:threads=N, "
        "cpu:replicas=K or cpu:cores=N. Repeat or comma-separate.",
    ),
    growth: list[str] | None = typer.Option(None, "--growth", help="Traffic multiples to size for (1,1.5,2,3,4)."),
    monthly_growth: str | None = typer.Option(None, "--monthly-growth", help="e.g. 5%: when the fleet runs out."),
    prices: Path | None = typer.Option(None, "--prices", help="YAML of prices and economics over the defaults."),
    years: float | None = typer.Option(None, "--years", help="TCO horizon in years (default 3)."),
    db: Path | None = typer.Option(None, "--db", help="Results database the plan was measured into."),
    as_json: bool = typer.Option(False, "--json", help="Print the forecast as JSON only."),
) -> None:
    """How many devices of the plan's primary pool hold its SLO at the traffic's peak (simulated as hwfit
    serve runs it, within the SLO's headroom); how that grows with traffic and when the current fleet
    runs out; the same on hardware never measured (--what-if: roofline estimate from the measured
    reference, labelled estimated); and the cost of each: $/1M inferences and TCO over years for buying,
    leasing and renting, with the break-even month. Every price says where it came from."""
    from hwfit.forecast import DEFAULT_GROWTH, forecast_plan, load_economics
    from hwfit.plan import load_plan
    from hwfit.store import open_store

    plan = load_plan(plan_file)
    spec = traffic or f"poisson:{plan.slo.peak_rps or plan.slo.throughput_rps:g}"
    economics = load_economics(prices)
    if years is not None:
        if not years > 0:
            raise typer.BadParameter(f"--years {years}: must be > 0")
        economics = economics.model_copy(update={"years": years})
    err = Console(stderr=True)
    say = (lambda message: None) if as_json else (lambda message: err.print(f"[dim]{message} ...[/]"))
    with open_store(db) as store:
        result = forecast_plan(
            plan,
            spec,
            store,
            tuple(split_values(what_if) or ()),
            _factors(growth) or DEFAULT_GROWTH,
            _growth_rate(monthly_growth),
            economics,
            progress=say,
        )
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, default=float))
        return
    _print(Console(), result, str(plan_file), plan.slo)


def _money(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.0f}" if value >= 100 else f"${value:.3g}"


def _print(console: Console, result, label: str, slo) -> None:
    console.print(
        f"[bold]hwfit forecast[/] {label} under [bold]{result.traffic}[/]: peak {result.peak_rps:.4g} req/s, mean "
        f"{result.mean_rps:.4g} req/s. A device count holds when, at a steady rate equal to the peak, the "
        f"simulated p99 is within {slo.latency_p99_ms:g} ms, at most 0.1% is refused and the peak is within "
        f"{slo.headroom:g} × capacity."
    )
    table = Table(title="Devices to hold the SLO at the peak", title_justify="left")
    for column in ("device", "how", "devices", "p99 at peak", "cheapest $/1M"):
        table.add_column(column, justify="left" if column in ("device", "how") else "right")
    for device in result.devices:
        answer = device.capacity
        check = answer.check
        priced = [o for o in device.tco.options if o.per_million is not None] if device.tco else []
        cheapest = min(priced, key=lambda o: o.per_million, default=None)
        table.add_row(
            device.label,
            device.how,
            "none holds" if answer.devices_needed is None else str(answer.devices_needed),
            "—" if check is None or check.p99_ms is None else f"{check.p99_ms:.1f} ms",
            "—" if cheapest is None else f"{_money(cheapest.per_million)} ({cheapest.name})",
        )
    console.print(table)
    costed = [device for device in result.devices if device.tco and device.tco.options]
    if costed:
        years = costed[0].tco.years
        cost = Table(title=f"Cost over {years:g} years at the mean rate", title_justify="left")
        for column in ("device", "option", "upfront", "per month", "total", "$/1M"):
            cost.add_column(column, justify="left" if column in ("device", "option") else "right")
        for device in costed:
            for option in device.tco.options:
                cost.add_row(
                    device.label,
                    option.name,
                    _money(option.upfront_usd),
                    _money(option.monthly_usd),
                    _money(option.total_usd),
                    _money(option.per_million),
                )
        console.print(cost)
        for device in costed:
            if device.tco.break_even_month is not None:
                console.print(
                    f"{device.label}: buying breaks even with the cheapest rental in month "
                    f"{device.tco.break_even_month:.1f}."
                )
    if result.growth is not None:
        grown = result.growth
        growth_table = Table(title="As traffic grows", title_justify="left")
        for column in ("× traffic", "peak req/s", "devices", "p99 at peak"):
            growth_table.add_column(column, justify="right")
        for row in grown.rows:
            growth_table.add_row(
                f"{row.factor:g}",
                f"{row.peak_rps:.4g}",
                "none holds" if row.devices_needed is None else str(row.devices_needed),
                "—" if row.p99_ms is None else f"{row.p99_ms:.1f} ms",
            )
        console.print(growth_table)
        line = (
            f"The plan as it is ({grown.fleet_devices} device(s)) holds up to ×{grown.fleet_limit_factor:.3g} of this "
            f"traffic (peak {grown.fleet_limit_rps:.4g} req/s)"
        )
        if grown.months_left is not None:
            line += f"; at {grown.monthly_growth:.1%}/month it runs out " + (
                "now." if grown.months_left <= 0 else f"in {grown.months_left:.1f} months."
            )
        console.print(line + ".")
    for device in result.devices:
        console.print(f"  [dim]{device.label}: service times {device.note}[/]")
        if device.tco:
            for option in device.tco.options:
                console.print(f"  [dim]  {option.name}: {option.sources}[/]")
            if device.tco.missing:
                console.print(f"  [dim]  not priced: {', '.join(device.tco.missing)}[/]")

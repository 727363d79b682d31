"""`hwfit top`: a server's state from two scrapes of its /metrics — per pool requests/s, p50/p99 of
the window (from histogram deltas), mean batch, queue depth, shed/retried/rejected; per device
utilization, memory and power."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from hwfit.telemetry import (
    Scrape,
    delta_by,
    delta_of,
    histogram_delta,
    histogram_quantile,
    metrics_url,
    parse_metrics,
    scrape,
)

__all__ = ["histogram_quantile", "metrics_url", "parse_metrics", "render", "scrape", "snapshot"]


@dataclass(frozen=True)
class PoolRow:
    pool: str
    role: str
    emulated: bool
    up: bool | None
    requests_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    mean_batch: float | None
    queue_depth: float
    shed: float  # in the window
    retried: float
    rejected: float
    failed: float


@dataclass(frozen=True)
class DeviceRow:
    device: str
    utilization: float | None
    memory_used_bytes: float | None
    power_w: float | None


@dataclass(frozen=True)
class Snapshot:
    window_s: float
    pools: list[PoolRow]
    devices: list[DeviceRow]
    rejected_at_admission: float  # no pool could meet the deadline (pool="")


def snapshot(before: Scrape, after: Scrape) -> Snapshot:
    window_s = max(after.at_s - before.at_s, 1e-9)
    requests = delta_by(before, after, "hwfit_requests_total", ("pool", "outcome"))
    info = {dict(labels)["pool"]: dict(labels) for labels in after.series("hwfit_pool_info")}
    pools = sorted(({pool for pool, _ in requests} | set(info)) - {""})
    rows = [_pool_row(pool, info.get(pool, {}), requests, before, after, window_s) for pool in pools]
    return Snapshot(window_s, rows, _device_rows(after), requests.get(("", "rejected"), 0.0))


def _pool_row(pool: str, info: dict, requests: dict, before: Scrape, after: Scrape, window_s: float) -> PoolRow:
    latency = histogram_delta(before, after, "hwfit_request_duration_seconds", pool)
    batch_count = delta_of(before, after, "hwfit_batch_size_count", pool)
    batch_sum = delta_of(before, after, "hwfit_batch_size_sum", pool)
    up = _value(after, "hwfit_pool_up", pool)
    return PoolRow(
        pool=pool,
        role=info.get("role", ""),
        emulated=info.get("emulated") == "true",
        up=None if up is None else up > 0,
        requests_per_s=requests.get((pool, "success"), 0.0) / window_s,
        p50_ms=_ms(histogram_quantile(0.5, latency)),
        p99_ms=_ms(histogram_quantile(0.99, latency)),
        mean_batch=batch_sum / batch_count if batch_count > 0 else None,
        queue_depth=_value(after, "hwfit_queue_depth", pool) or 0.0,
        shed=requests.get((pool, "shed"), 0.0),
        retried=requests.get((pool, "retried"), 0.0),
        rejected=requests.get((pool, "rejected"), 0.0),
        failed=requests.get((pool, "failed"), 0.0),
    )


def _device_rows(after: Scrape) -> list[DeviceRow]:
    figures: dict[str, dict[str, float]] = defaultdict(dict)
    for name, key in (
        ("hwfit_device_utilization_ratio", "utilization"),
        ("hwfit_device_memory_used_bytes", "memory"),
        ("hwfit_device_power_watts", "power"),
    ):
        for labels, value in after.series(name).items():
            figures[dict(labels)["device"]][key] = value
    return [
        DeviceRow(device, f.get("utilization"), f.get("memory"), f.get("power"))
        for device, f in sorted(figures.items())
    ]


def _value(scrape_: Scrape, name: str, pool: str) -> float | None:
    for labels, value in scrape_.series(name).items():
        if dict(labels).get("pool") == pool:
            return value
    return None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def render(snapshot_: Snapshot, url: str):
    """A rich renderable: the pools table and the devices table."""
    from rich.console import Group
    from rich.table import Table

    pools = Table(title=f"hwfit top — {metrics_url(url)} (last {snapshot_.window_s:.1f} s)", title_justify="left")
    for column in (
        "pool",
        "role",
        "state",
        "req/s",
        "p50 ms",
        "p99 ms",
        "batch",
        "queue",
        "shed",
        "retried",
        "rejected",
        "failed",
    ):
        pools.add_column(column, justify="left" if column in ("pool", "role", "state") else "right")
    for row in snapshot_.pools:
        state = "?" if row.up is None else ("up" if row.up else "DOWN")
        pools.add_row(
            row.pool + (" (EMULATED)" if row.emulated else ""),
            row.role,
            state,
            f"{row.requests_per_s:.1f}",
            _text(row.p50_ms),
            _text(row.p99_ms),
            _text(row.mean_batch),
            f"{row.queue_depth:.0f}",
            f"{row.shed:.0f}",
            f"{row.retried:.0f}",
            f"{row.rejected:.0f}",
            f"{row.failed:.0f}",
        )
    if snapshot_.rejected_at_admission:
        pools.caption = f"{snapshot_.rejected_at_admission:.0f} rejected at admission (no pool could meet the deadline)"
    devices = Table(title="devices", title_justify="left")
    for column in ("device", "utilization", "memory used", "power"):
        devices.add_column(column, justify="left" if column == "device" else "right")
    for device in snapshot_.devices:
        devices.add_row(
            device.device,
            "-" if device.utilization is None else f"{device.utilization:.0%}",
            "-" if device.memory_used_bytes is None else f"{device.memory_used_bytes / 2**30:.2f} GiB",
            "-" if device.power_w is None else f"{device.power_w:.0f} W",
        )
    return Group(pools, devices)


def _text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"

"""Models served by `hwfit serve`, read from its /metrics: each pool's variant, device and replicas, how
many samples and batches it ran in a window, and the server's process (found by its listening port)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

import psutil

from hwfit.telemetry import Scrape, delta_of, scrape


@dataclass(frozen=True)
class ServedPool:
    url: str
    model: str
    pool: str
    variant_key: str
    device: str
    replicas: int
    emulated: bool


@dataclass(frozen=True)
class PoolWindow:
    """What one pool ran between two scrapes (counted by the server)."""

    pool: ServedPool
    samples: float
    batches: float
    answered: float

    @property
    def mean_batch(self) -> float | None:
        return self.samples / self.batches if self.batches > 0 else None

    def to_dict(self) -> dict:
        return {
            "url": self.pool.url,
            "model": self.pool.model,
            "pool": self.pool.pool,
            "variant": self.pool.variant_key,
            "device": self.pool.device,
            "replicas": self.pool.replicas,
            "samples": self.samples,
            "batches": self.batches,
            "answered": self.answered,
            "mean_batch": self.mean_batch,
        }


def served_pools(url: str, metrics: Scrape) -> list[ServedPool]:
    """The pools `hwfit_pool_info` lists (with `hwfit_pool_ready_replicas`); empty for a server that is not hwfit's."""
    replicas = {
        dict(labels).get("pool"): value for labels, value in metrics.series("hwfit_pool_ready_replicas").items()
    }
    pools = []
    for labels in metrics.series("hwfit_pool_info"):
        info = dict(labels)
        name = info.get("pool", "")
        pools.append(
            ServedPool(
                url,
                info.get("model", ""),
                name,
                info.get("variant", ""),
                info.get("device", ""),
                max(1, int(replicas.get(name) or 1)),
                info.get("emulated") == "true",
            )
        )
    return sorted(pools, key=lambda pool: (pool.model, pool.pool))


def pool_windows(pools: list[ServedPool], before: Scrape, after: Scrape) -> list[PoolWindow]:
    windows = []
    for pool in pools:
        samples = delta_of(before, after, "hwfit_batch_size_sum", pool.pool)
        batches = delta_of(before, after, "hwfit_batch_size_count", pool.pool)
        answered = sum(
            max(0.0, value - before.series("hwfit_requests_total").get(labels, 0.0))
            for labels, value in after.series("hwfit_requests_total").items()
            if dict(labels).get("pool") == pool.pool and dict(labels).get("outcome") == "success"
        )
        windows.append(PoolWindow(pool, samples, batches, answered))
    return windows


def read_metrics(url: str, token: str | None = None) -> Scrape:
    return scrape(url, token, timeout_s=5.0)


def listening_pid(url: str) -> int | None:
    """The process listening on the URL's port on this machine (None when it is another host's, or unseen)."""
    parsed = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        return None
    port = parsed.port or 80
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port:
            return connection.pid
    return None

"""Reading a server's Prometheus /metrics: one scrape parsed into samples, counter and histogram deltas
between two scrapes, and Prometheus' histogram_quantile. Used by `hwfit top` and `hwfit audit`."""

from __future__ import annotations

import math
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from hwfit.core import HwfitError

Labels = frozenset


@dataclass(frozen=True)
class Scrape:
    at_s: float  # time.monotonic() when it was taken
    samples: dict[tuple[str, Labels], float]

    def series(self, name: str) -> dict[Labels, float]:
        return {labels: value for (sample, labels), value in self.samples.items() if sample == name}


def metrics_url(url: str) -> str:
    url = url.rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url if url.endswith("/metrics") else url + "/metrics"


def parse_metrics(text: str, at_s: float) -> Scrape:
    samples: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return Scrape(at_s, samples)


def scrape(url: str, token: str | None = None, timeout_s: float = 5.0) -> Scrape:
    """GET the server's /metrics and parse it; errors name the URL and what to check."""
    target = metrics_url(url)
    request = urllib.request.Request(target)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            text = response.read().decode()
    except OSError as error:
        raise HwfitError(
            f"cannot read metrics from {target} ({error}); is `hwfit serve` running there (and is --token right)?"
        ) from error
    return parse_metrics(text, time.monotonic())


def histogram_quantile(quantile: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) pairs; None if empty."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = quantile * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for upper_bound, count in buckets:
        if count >= rank:
            if math.isinf(upper_bound):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (upper_bound - lower_bound) * share
        lower_bound, lower_count = upper_bound, count
    return lower_bound


def delta_by(before: Scrape, after: Scrape, name: str, keys: tuple[str, ...]) -> dict[tuple, float]:
    """How much counter `name` grew between the scrapes, summed by the values of the labels `keys`."""
    old = before.series(name)
    deltas: dict[tuple, float] = defaultdict(float)
    for labels, value in after.series(name).items():
        named = dict(labels)
        deltas[tuple(named.get(k, "") for k in keys)] += max(0.0, value - old.get(labels, 0.0))
    return dict(deltas)


def delta_of(before: Scrape, after: Scrape, name: str, pool: str) -> float:
    """How much counter `name` of one pool grew between the scrapes."""
    return sum(v for (p,), v in delta_by(before, after, name, ("pool",)).items() if p == pool)


def histogram_delta(before: Scrape, after: Scrape, name: str, pool: str) -> list[tuple[float, float]]:
    """One pool's histogram `name` over the window: (upper bound, cumulative count) pairs."""
    deltas = delta_by(before, after, name + "_bucket", ("pool", "le"))
    return [(float(le), count) for (p, le), count in deltas.items() if p == pool]

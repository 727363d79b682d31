"""A load run's result: every request's record, and the summary over the measured window.

The window is [warmup_s, duration_s) from the run's start: requests sent in the warm-up are left
out. Latency percentiles (nearest rank) are over the HTTP 200 answers to requests *scheduled* in the
window (open loop; timed from the scheduled send) or *ended* in it (closed loop; from the send).
answered_rps counts HTTP 200 answers that ended in the window; offered_rps the requests due in it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hwfit.load.records import Record, reason_kind, write_records_csv


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None for none."""
    if not sorted_values:
        return None
    rank = min(len(sorted_values) - 1, max(0, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[rank]


@dataclass
class LoadResult:
    records: list[Record]
    mode: str  # "open" | "closed"
    traffic: str | None  # the spec, open loop
    concurrency: int | None  # clients, closed loop
    duration_s: float
    warmup_s: float
    url: str = ""
    model: str = ""
    model_how: str = ""
    inputs: str = ""
    planned_requests: int | None = None  # open loop: the schedule's length
    late_threshold_ms: float = 2.0
    client_cpu_s: float | None = None  # CPU time of the sending process during the run (all its threads)
    _summary: dict | None = field(default=None, repr=False)

    @property
    def window_s(self) -> float:
        return self.duration_s - self.warmup_s

    def counted(self) -> list[Record]:
        """The records the summary covers (see the module's doc)."""
        w0, w1 = self.warmup_s, self.duration_s
        if self.mode == "open":
            return [r for r in self.records if w0 <= r.scheduled_s < w1]
        return [r for r in self.records if w0 <= r.ended_s < w1]

    def summary(self) -> dict:
        if self._summary is None:
            self._summary = self._summarize()
        return dict(self._summary)

    def _summarize(self) -> dict:
        counted = self.counted()
        w0, w1 = self.warmup_s, self.duration_s
        latencies = sorted(r.latency_ms for r in counted if r.outcome == "ok")
        rejected = Counter(reason_kind(r.reason) for r in counted if r.outcome == "rejected")
        errors = Counter(reason_kind(r.reason) for r in counted if r.outcome == "error")
        answered = sum(1 for r in self.records if r.outcome == "ok" and w0 <= r.ended_s < w1)
        offered = sum(1 for r in self.records if w0 <= r.scheduled_s < w1)
        lateness = [r.late_ms for r in counted if r.late_ms is not None] if self.mode == "open" else []
        return {
            "mode": self.mode,
            "traffic": self.traffic,
            "concurrency": self.concurrency,
            "window_s": self.window_s,
            "warmup_s": self.warmup_s,
            "requests": len(self.records),
            "counted": len(counted),
            "offered_rps": offered / self.window_s,
            "answered_rps": answered / self.window_s,
            "ok": len(latencies),
            "p50_ms": percentile(latencies, 50),
            "p90_ms": percentile(latencies, 90),
            "p99_ms": percentile(latencies, 99),
            "p999_ms": percentile(latencies, 99.9),
            "max_ms": latencies[-1] if latencies else None,
            "mean_ms": sum(latencies) / len(latencies) if latencies else None,
            "rejected": sum(rejected.values()),
            "rejected_reasons": dict(rejected.most_common()),
            "errors": sum(errors.values()),
            "error_kinds": dict(errors.most_common()),
            "cancelled": sum(1 for r in counted if r.outcome == "cancelled"),
            "cancelled_total": sum(1 for r in self.records if r.outcome == "cancelled"),
            "late": sum(1 for ms in lateness if ms > self.late_threshold_ms),
            "max_late_ms": max(lateness) if lateness else None,
            "late_threshold_ms": self.late_threshold_ms,
            "client_cpu_s": self.client_cpu_s,
            "client_cpu_ms_per_request": (
                self.client_cpu_s * 1000.0 / len(self.records)
                if self.client_cpu_s is not None and self.records
                else None
            ),
        }

    def write_records_csv(self, path: str | Path) -> Path:
        return write_records_csv(self.records, path)

    def to_dict(self) -> dict:
        return {
            "url": self.url,
            "model": self.model,
            "model_how": self.model_how,
            "inputs": self.inputs,
            "mode": self.mode,
            "traffic": self.traffic,
            "concurrency": self.concurrency,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "planned_requests": self.planned_requests,
            "summary": self.summary(),
            "how": {
                "window": f"[{self.warmup_s:g} s, {self.duration_s:g} s) from the start; warm-up requests excluded",
                "latency": "open loop: from the scheduled send time to the end of the answer (no coordinated "
                "omission); closed loop: from the send; percentiles by nearest rank over the HTTP 200 answers",
                "answered_rps": "HTTP 200 answers that ended in the window / window length",
                "offered_rps": "requests due (open) or sent (closed) in the window / window length",
                "late": f"open loop: sent more than {self.late_threshold_ms:g} ms after the scheduled time",
                "rejected": "HTTP 429 or 503, counted per reason (numbers in the reason replaced by N)",
                "client_cpu_ms_per_request": "CPU time of the load generator's process while sending / requests "
                "sent (warm-up included); measures the generator only when nothing else runs in its process",
            },
        }

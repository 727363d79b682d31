"""One request's record, how an answer becomes an outcome, and the records as CSV.

Outcomes: `ok` (HTTP 200), `rejected` (HTTP 429 or 503: the server refused it, with its reason),
`error` (any other status, a timeout, a broken connection: the reason says which), `cancelled`
(still outstanding when the drain period ended).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

OUTCOMES = ("ok", "rejected", "error", "cancelled")
REJECT_STATUSES = (429, 503)
CSV_COLUMNS = ("scheduled_s", "sent_s", "ended_s", "latency_ms", "outcome", "status", "reason")
MAX_REASON_CHARS = 300


@dataclass(frozen=True)
class Record:
    """Times in seconds from the run's start. `scheduled_s`: when the request was due (open loop)
    or sent (closed loop); `sent_s`: when it left (None if cancelled before it could leave);
    `status`: the HTTP status, 0 when there was none; `reason`: the server's error text, or what
    went wrong."""

    index: int
    scheduled_s: float
    sent_s: float | None
    ended_s: float
    outcome: str
    status: int
    reason: str

    @property
    def latency_ms(self) -> float:
        """From the scheduled send to the end of the answer."""
        return (self.ended_s - self.scheduled_s) * 1000.0

    @property
    def late_ms(self) -> float | None:
        return None if self.sent_s is None else (self.sent_s - self.scheduled_s) * 1000.0


def outcome_of(status: int, body: bytes, failure: str) -> tuple[str, str]:
    """(outcome, reason) of one answer."""
    if status == 200:
        return "ok", ""
    if status == 0:
        return "error", failure or "no response"
    reason = server_reason(body)
    if status in REJECT_STATUSES:
        return "rejected", reason or f"HTTP {status} without a reason"
    return "error", f"HTTP {status}" + (f": {reason}" if reason else "")


def server_reason(body: bytes) -> str:
    """The KServe v2 error body's "error" text (or the body's first line), shortened."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            text = data["error"]
    except ValueError:
        text = text.splitlines()[0] if text else ""
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def reason_kind(reason: str) -> str:
    """A reason with its numbers replaced by N: refusals that differ only in a predicted
    millisecond count are one kind ("no pool can answer within N ms; the earliest is N ms ...")."""
    status = re.match(r"HTTP \d{3}(: )?", reason)  # the status stays: "HTTP 400: ..." is a kind of its own
    head = status.group(0) if status else ""
    return head + _NUMBER.sub("N", reason[len(head) :])


def write_records_csv(records, path: str | Path) -> Path:
    """One row per request, CSV_COLUMNS; `scheduled_s` is the column `trace:FILE.csv` replays."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for r in records:
            writer.writerow(
                [
                    f"{r.scheduled_s:.6f}",
                    "" if r.sent_s is None else f"{r.sent_s:.6f}",
                    f"{r.ended_s:.6f}",
                    f"{r.latency_ms:.3f}",
                    r.outcome,
                    r.status,
                    r.reason,
                ]
            )
    return path

"""Traffic: the rate of requests over time, and the arrival times drawn from it.

One noun shared by the load generator (`hwfit load` sends at these times) and the simulator
(`hwfit simulate` feeds them to the model of the pools), so that both see the same traffic.
A spec is one short string:

    poisson:RATE                      Poisson arrivals at RATE requests/s
    constant:RATE                     evenly spaced arrivals at RATE requests/s
    diurnal:PEAK,TROUGH,PERIOD        a sine between TROUGH and PEAK over PERIOD (Poisson thinning);
                                      starts at the trough, peaks half a period in
    burst:BASE,PEAK,EVERY,FOR         BASE requests/s, and PEAK for FOR out of every EVERY
    steps:RATE@FOR,RATE@FOR,...       a rate schedule: each RATE for FOR, then the next
    trace:FILE.csv (or FILE.csv)      replay of recorded send times (a column of timestamps)

Durations take a unit: `90` or `90s`, `10m`, `2h`, `1d`. Rates are requests per second.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwfit.core.errors import HwfitError

TRACE_COLUMNS = ("scheduled_s", "timestamp", "time_s", "time", "t", "arrival_s", "send_s")
_UNITS_S = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_SPEC_FORMS = (
    "poisson:RATE, constant:RATE, diurnal:PEAK,TROUGH,PERIOD, burst:BASE,PEAK,EVERY,FOR, "
    "steps:RATE@FOR,RATE@FOR,..., or trace:FILE.csv"
)


class TrafficError(HwfitError):
    """A traffic spec or trace file is malformed; the message names the field and the form expected."""


def parse_duration_s(text: str, what: str) -> float:
    """'90', '90s', '10m', '2h', '1d', '250ms' -> seconds (> 0)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*", str(text).lower())
    if not match or match.group(2) not in _UNITS_S:
        raise TrafficError(f"{what}: {text!r} is not a duration (expected a number of seconds, or with s/m/h/d)")
    seconds = float(match.group(1)) * _UNITS_S[match.group(2)]
    if not seconds > 0:
        raise TrafficError(f"{what}: {text!r} must be longer than zero")
    return seconds


def _rate(text: str, what: str, allow_zero: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TrafficError(f"{what}: {text!r} is not a rate (expected requests per second, a number)") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise TrafficError(f"{what}: {text!r} must be a finite number {bound} (requests per second)")
    return value


@dataclass(frozen=True)
class Traffic:
    """A traffic shape. `rate_at(t)` is the intended rate at t seconds from the start;
    `arrivals(duration_s, seed)` the arrival times (seconds from the start, sorted)."""

    spec: str

    # the shapes below override these
    def rate_at(self, t_s: float) -> float:
        raise NotImplementedError

    @property
    def peak_rps(self) -> float:
        raise NotImplementedError

    @property
    def natural_duration_s(self) -> float:
        """How long the shape takes to show itself: one period, one cycle, the trace's span."""
        raise NotImplementedError

    def scaled(self, factor: float) -> Traffic:
        """The same shape with every rate multiplied by `factor` (growth: ×1.5, ×2, ...)."""
        raise NotImplementedError

    def arrivals(self, duration_s: float | None = None, seed: int = 0) -> np.ndarray:
        """Poisson arrivals at the rate `rate_at(t)`, by thinning at the peak rate."""
        duration_s = self._duration(duration_s)
        rng = np.random.default_rng(seed)
        peak = self.peak_rps
        if peak <= 0:
            return np.zeros(0)
        candidates = _poisson_times(rng, peak, duration_s)
        rates = np.array([self.rate_at(t) for t in candidates]) if len(candidates) else np.zeros(0)
        keep = rng.random(len(candidates)) * peak < rates
        return candidates[keep]

    def mean_rps(self, duration_s: float | None = None) -> float:
        """The mean intended rate over the window (numerical integral of `rate_at`)."""
        duration_s = self._duration(duration_s)
        grid = np.linspace(0.0, duration_s, 2001)
        return float(np.mean([self.rate_at(t) for t in grid]))

    def _duration(self, duration_s: float | None) -> float:
        duration_s = self.natural_duration_s if duration_s is None else duration_s
        if not duration_s > 0:
            raise TrafficError(f"traffic {self.spec!r}: the duration must be > 0 s, got {duration_s!r}")
        return float(duration_s)

    def to_dict(self) -> dict:
        return {"spec": self.spec, "kind": self.spec.split(":", 1)[0], "peak_rps": self.peak_rps}


def _poisson_times(rng: np.random.Generator, rate: float, duration_s: float) -> np.ndarray:
    expected = rate * duration_s
    count = int(expected + 6 * math.sqrt(expected) + 16)
    times = np.cumsum(rng.exponential(1.0 / rate, size=count))
    while times[-1] < duration_s:  # rare: draw more
        more = np.cumsum(rng.exponential(1.0 / rate, size=count)) + times[-1]
        times = np.concatenate([times, more])
    return times[times < duration_s]


@dataclass(frozen=True)
class _Steady(Traffic):
    """One rate throughout; the subclasses differ only in how arrivals are spaced."""

    rate_rps: float = 1.0
    kind = ""  # the spec's KIND

    def rate_at(self, t_s: float) -> float:
        return self.rate_rps

    @property
    def peak_rps(self) -> float:
        return self.rate_rps

    @property
    def natural_duration_s(self) -> float:
        return 60.0

    def scaled(self, factor: float) -> Traffic:
        rate = self.rate_rps * factor
        return type(self)(spec=f"{self.kind}:{rate:g}", rate_rps=rate)


@dataclass(frozen=True)
class Poisson(_Steady):
    kind = "poisson"

    def arrivals(self, duration_s: float | None = None, seed: int = 0) -> np.ndarray:
        return _poisson_times(np.random.default_rng(seed), self.rate_rps, self._duration(duration_s))


@dataclass(frozen=True)
class Constant(_Steady):
    kind = "constant"

    def arrivals(self, duration_s: float | None = None, seed: int = 0) -> np.ndarray:
        duration_s = self._duration(duration_s)
        return np.arange(0.0, duration_s, 1.0 / self.rate_rps)


@dataclass(frozen=True)
class Diurnal(Traffic):
    """rate(t) = trough + (peak - trough)·(1 - cos(2πt/period))/2: trough at 0, peak at period/2."""

    peak: float = 1.0
    trough: float = 0.0
    period_s: float = 86400.0

    def rate_at(self, t_s: float) -> float:
        return self.trough + (self.peak - self.trough) * (1.0 - math.cos(2.0 * math.pi * t_s / self.period_s)) / 2.0

    @property
    def peak_rps(self) -> float:
        return self.peak

    @property
    def natural_duration_s(self) -> float:
        return self.period_s

    def scaled(self, factor: float) -> Traffic:
        peak, trough = self.peak * factor, self.trough * factor
        return Diurnal(
            spec=f"diurnal:{peak:g},{trough:g},{self.period_s:g}", peak=peak, trough=trough, period_s=self.period_s
        )


@dataclass(frozen=True)
class Burst(Traffic):
    """BASE requests/s, and PEAK during the first FOR seconds of every EVERY seconds, starting
    after one quiet stretch (the system is warm when the first burst comes)."""

    base: float = 0.0
    peak: float = 1.0
    every_s: float = 60.0
    for_s: float = 10.0

    def rate_at(self, t_s: float) -> float:
        phase = (t_s % self.every_s) - (self.every_s - self.for_s)
        return self.peak if phase >= 0 else self.base

    @property
    def peak_rps(self) -> float:
        return max(self.peak, self.base)

    @property
    def natural_duration_s(self) -> float:
        return 2 * self.every_s

    def scaled(self, factor: float) -> Traffic:
        base, peak = self.base * factor, self.peak * factor
        return Burst(
            spec=f"burst:{base:g},{peak:g},{self.every_s:g},{self.for_s:g}",
            base=base,
            peak=peak,
            every_s=self.every_s,
            for_s=self.for_s,
        )


@dataclass(frozen=True)
class Steps(Traffic):
    """A rate schedule: (rate, seconds) steps, one after the other; zero after the last."""

    steps: tuple[tuple[float, float], ...] = ()

    def rate_at(self, t_s: float) -> float:
        start = 0.0
        for rate, seconds in self.steps:
            if start <= t_s < start + seconds:
                return rate
            start += seconds
        return 0.0

    @property
    def peak_rps(self) -> float:
        return max(rate for rate, _ in self.steps)

    @property
    def natural_duration_s(self) -> float:
        return sum(seconds for _, seconds in self.steps)

    def scaled(self, factor: float) -> Traffic:
        steps = tuple((rate * factor, seconds) for rate, seconds in self.steps)
        return Steps(spec="steps:" + ",".join(f"{r:g}@{s:g}" for r, s in steps), steps=steps)

    def arrivals(self, duration_s: float | None = None, seed: int = 0) -> np.ndarray:
        duration_s = self._duration(duration_s)
        rng = np.random.default_rng(seed)
        parts, start = [], 0.0
        for rate, seconds in self.steps:
            length = min(seconds, duration_s - start)
            if length <= 0:
                break
            if rate > 0:
                parts.append(_poisson_times(rng, rate, length) + start)
            start += seconds
        return np.concatenate(parts) if parts else np.zeros(0)


@dataclass(frozen=True)
class Trace(Traffic):
    """Recorded arrival times (seconds from the first), replayed as they are; scaling by f
    compresses time by f. The replay ends where the trace ends."""

    times_s: tuple[float, ...] = field(default=(), repr=False)
    source: str = ""

    def rate_at(self, t_s: float) -> float:
        # the trace's own rate over a window of 1/20 of its span (at least 1 s) around t
        window = max(self.natural_duration_s / 20.0, 1.0)
        times = np.asarray(self.times_s)
        inside = np.count_nonzero((times >= t_s - window / 2) & (times < t_s + window / 2))
        return inside / window

    @property
    def peak_rps(self) -> float:
        window = max(self.natural_duration_s / 20.0, 1.0)
        times = np.asarray(self.times_s)
        ends = np.searchsorted(times, times + window)
        return float((ends - np.arange(len(times))).max() / window)

    @property
    def natural_duration_s(self) -> float:
        return max(self.times_s[-1], 1e-3)

    def scaled(self, factor: float) -> Traffic:
        times = tuple(t / factor for t in self.times_s)
        return Trace(spec=f"{self.spec}×{factor:g}", times_s=times, source=self.source)

    def arrivals(self, duration_s: float | None = None, seed: int = 0) -> np.ndarray:
        duration_s = self._duration(duration_s)
        times = np.asarray(self.times_s)
        return times[times < duration_s]

    def mean_rps(self, duration_s: float | None = None) -> float:
        duration_s = self._duration(duration_s)
        return float(np.count_nonzero(np.asarray(self.times_s) < duration_s) / duration_s)


def parse_traffic(spec: str | Traffic) -> Traffic:
    """A spec string (see the module's doc) -> a Traffic; TrafficError names what is wrong."""
    if isinstance(spec, Traffic):
        return spec
    text = str(spec).strip()
    if text.lower().endswith(".csv") and not text.lower().startswith("trace:"):
        text = "trace:" + text
    kind, sep, args = text.partition(":")
    kind = kind.strip().lower()
    if not sep:
        raise TrafficError(f"traffic {text!r}: expected KIND:ARGS, one of {_SPEC_FORMS}")
    if kind == "trace":
        return read_trace(args.strip())
    fields = [part.strip() for part in args.split(",")]
    if kind in ("poisson", "constant"):
        _expect(text, fields, 1, "RATE")
        rate = _rate(fields[0], f"traffic {text!r}: RATE")
        return (Poisson if kind == "poisson" else Constant)(spec=text, rate_rps=rate)
    if kind == "diurnal":
        _expect(text, fields, 3, "PEAK,TROUGH,PERIOD")
        peak = _rate(fields[0], f"traffic {text!r}: PEAK")
        trough = _rate(fields[1], f"traffic {text!r}: TROUGH", allow_zero=True)
        if trough > peak:
            raise TrafficError(f"traffic {text!r}: TROUGH ({trough:g}) is above PEAK ({peak:g})")
        period = parse_duration_s(fields[2], f"traffic {text!r}: PERIOD")
        return Diurnal(spec=text, peak=peak, trough=trough, period_s=period)
    if kind == "burst":
        _expect(text, fields, 4, "BASE,PEAK,EVERY,FOR")
        base = _rate(fields[0], f"traffic {text!r}: BASE", allow_zero=True)
        peak = _rate(fields[1], f"traffic {text!r}: PEAK")
        every = parse_duration_s(fields[2], f"traffic {text!r}: EVERY")
        length = parse_duration_s(fields[3], f"traffic {text!r}: FOR")
        if length >= every:
            raise TrafficError(f"traffic {text!r}: FOR ({length:g} s) must be shorter than EVERY ({every:g} s)")
        return Burst(spec=text, base=base, peak=peak, every_s=every, for_s=length)
    if kind == "steps":
        steps = []
        for index, part in enumerate(fields, 1):
            rate_text, at, seconds_text = part.partition("@")
            if not at:
                raise TrafficError(f"traffic {text!r}: step {index} {part!r} is not RATE@FOR (e.g. 20@30s)")
            rate = _rate(rate_text, f"traffic {text!r}: step {index} RATE", allow_zero=True)
            steps.append((rate, parse_duration_s(seconds_text, f"traffic {text!r}: step {index} FOR")))
        if not any(rate > 0 for rate, _ in steps):
            raise TrafficError(f"traffic {text!r}: every step has rate 0; at least one must send")
        return Steps(spec=text, steps=tuple(steps))
    raise TrafficError(f"traffic {text!r}: unknown kind {kind!r}; expected {_SPEC_FORMS}")


def _expect(text: str, fields: list[str], count: int, form: str) -> None:
    if len(fields) != count or any(not f for f in fields):
        raise TrafficError(f"traffic {text!r}: expected {text.split(':')[0]}:{form} ({count} value(s))")


def read_trace(path: str | Path) -> Trace:
    """A CSV of arrival times in seconds (absolute or relative; sorted here). With a header, the
    column is the first of TRACE_COLUMNS present; without one, the first column."""
    if not str(path).strip():
        raise TrafficError("traffic trace: no file named (expected trace:FILE.csv)")
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text().splitlines()))
    except OSError as error:
        raise TrafficError(f"traffic trace {str(path)!r}: cannot read it ({error.strerror or error})") from None
    rows = [row for row in rows if row and any(cell.strip() for cell in row)]
    if not rows:
        raise TrafficError(f"traffic trace {str(path)!r} is empty; expected a column of timestamps in seconds")
    column, first_data = 0, 0
    header = [cell.strip().lower() for cell in rows[0]]
    if not _is_number(header[0] if header else ""):
        named = [name for name in TRACE_COLUMNS if name in header]
        if not named:
            raise TrafficError(
                f"traffic trace {str(path)!r}: no timestamp column in header {rows[0]}; "
                f"expected one of {', '.join(TRACE_COLUMNS)} (or no header and times in the first column)"
            )
        column, first_data = header.index(named[0]), 1
    times = []
    for line, row in enumerate(rows[first_data:], first_data + 1):
        cell = row[column].strip() if column < len(row) else ""
        if not _is_number(cell):
            raise TrafficError(f"traffic trace {str(path)!r}: row {line}: {cell!r} is not a time in seconds")
        times.append(float(cell))
    times_s = np.sort(np.asarray(times, dtype=float))
    times_s = times_s - times_s[0]
    if len(times_s) < 2 or times_s[-1] <= 0:
        raise TrafficError(f"traffic trace {str(path)!r}: needs at least two distinct timestamps")
    return Trace(spec=f"trace:{path}", times_s=tuple(times_s.tolist()), source=str(path))


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False

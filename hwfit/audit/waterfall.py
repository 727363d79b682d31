"""Where a device's purchased FLOPs went over a window: a waterfall whose steps add up to the purchased
total, each step with how it was obtained.

    purchased                    peak FLOP/s of the precision in use x wall time (spec or computed)
    - idle                       the device did nothing (measured)
    - other processes            busy with processes that are not audited (measured, per process)
    - busy but not computing     the audited work's busy time outside the model's arithmetic
    - batch below the sweet spot what the served batch gave up against the best measured batch
    - precision left on the table what fp32 gave up against the best precision within tolerance
    - computing below peak       the rest of the compute time: kernel efficiency (remainder)
    = useful                     FLOPs delivered (inferences x FLOPs per inference)

The losses are attributed in a fixed order from measured shares (busy >= audited >= computing), then
from the store's measured factors, each capped by what is left, so the steps always add up; the last
loss is the remainder and says so. Pure arithmetic: no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hwfit.core import Figure, HwfitError

# step names, in the order they are printed
PURCHASED = "purchased"
IDLE = "idle"
OTHER = "other processes"
NOT_COMPUTING = "busy but not computing"
BATCH = "batch below the sweet spot"
PRECISION = "precision left on the table"
BELOW_PEAK = "computing below peak"
UNSPLIT = "busy, useful work not measured"
USEFUL = "useful"

ADD_UP_TOLERANCE = 1e-9  # relative: the steps must sum to the purchased total


class AuditError(HwfitError):
    """An audit that cannot be made: bad options, nothing to watch, a waterfall that does not add up."""


@dataclass(frozen=True)
class Share:
    """A share of the device's capacity over the window (0-1), with how it was obtained."""

    value: float
    how: str
    source: str


@dataclass(frozen=True)
class Factor:
    """A measured throughput ratio (>= 1) from the store: the better configuration over the one in use."""

    value: float
    better: str  # the variant or batch that gives it
    evidence: str  # e.g. "run 12: 257 vs 50 samples/s"


@dataclass(frozen=True)
class Step:
    name: str
    flops: float  # FLOPs (OPs for int8) of the window
    share: float  # of the purchased total
    how: str  # provenance label
    source: str  # formula and inputs, counter names, run ids
    usd: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "flops": self.flops,
            "share": self.share,
            "how": self.how,
            "source": self.source,
            "usd": self.usd,
        }


@dataclass(frozen=True)
class WaterfallInputs:
    """What one device's waterfall is made from; None where a figure was not obtained (the reason in `notes`)."""

    device: str
    precision: str  # the precision whose peak is the purchased total
    window_s: float
    peak: Figure  # FLOP/s of `precision` (spec or computed)
    busy: Share  # the device did anything (cpu: 1 - idle share of all cores)
    audited: Share | None = None  # of it, the audited processes (None: no processes named)
    computing: Share | None = None  # of it, the model's arithmetic (GPU: GPM SM activity; CPU: estimated)
    not_computing_missing: str = ""  # why `computing` is None
    useful_flops: Figure | None = None  # counted FLOPs delivered in the window
    useful_missing: str = ""  # why `useful_flops` is None
    batch: Factor | None = None
    precision_gain: Factor | None = None
    usd_per_s: Figure | None = None  # the device's price per second of the window
    ceiling: Figure | None = None  # the measured ceiling of `precision`, shown beside the peak
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Waterfall:
    device: str
    precision: str
    window_s: float
    purchased: Step
    losses: tuple[Step, ...]
    useful: Step | None  # None where the useful work was not measured (its busy time is one step)
    ceiling: Figure | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        total = sum(step.flops for step in self.losses) + (self.useful.flops if self.useful else 0.0)
        if abs(total - self.purchased.flops) > ADD_UP_TOLERANCE * max(self.purchased.flops, 1.0):
            raise AuditError(
                f"{self.device}: the waterfall's steps add up to {total:.6g}, "
                f"not the purchased {self.purchased.flops:.6g}"
            )

    @property
    def steps(self) -> tuple[Step, ...]:
        return (self.purchased, *self.losses, *([self.useful] if self.useful else []))

    def step(self, name: str) -> Step | None:
        return next((step for step in self.steps if step.name == name), None)

    @property
    def useful_share(self) -> float | None:
        return self.useful.share if self.useful else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "precision": self.precision,
            "window_s": self.window_s,
            "steps": [step.to_dict() for step in self.steps],
            "useful_share": self.useful_share,
            "ceiling": self.ceiling.to_dict() if self.ceiling else None,
            "notes": list(self.notes),
        }


def _clamped(value: float) -> float:
    return min(1.0, max(0.0, value))


def _within(outer: float, share: Share, what: str, outer_what: str, notes: list[str]) -> float:
    """`share` clamped to 0-1 and capped at the `outer` share it is part of (the cap is noted)."""
    value = _clamped(share.value)
    if value > outer:
        notes.append(f"the {what} {value:.1%} exceeds the {outer_what} {outer:.1%}: capped")
        return outer
    return value


def build_waterfall(inputs: WaterfallInputs) -> Waterfall:
    """The waterfall of one device. Raises AuditError for a window or peak that is not positive."""
    if not inputs.window_s > 0:
        raise AuditError(f"{inputs.device}: the window must last > 0 s, got {inputs.window_s}")
    if not inputs.peak.value > 0:
        raise AuditError(f"{inputs.device}: the {inputs.precision} peak must be > 0 FLOP/s, got {inputs.peak.value}")
    purchased_flops = inputs.peak.value * inputs.window_s
    window_usd = inputs.usd_per_s.value * inputs.window_s if inputs.usd_per_s else None
    notes = list(inputs.notes)

    def step(name: str, share: float, how: str, source: str) -> Step:
        usd = window_usd * share if window_usd is not None else None
        return Step(name, share * purchased_flops, share, how, source, usd)

    purchased = Step(
        PURCHASED,
        purchased_flops,
        1.0,
        inputs.peak.how,
        f"{inputs.precision} peak {inputs.peak.value:.4g} FLOP/s ({inputs.peak.source}) x {inputs.window_s:.1f} s",
        window_usd,
    )
    busy = _clamped(inputs.busy.value)
    losses = [step(IDLE, 1.0 - busy, inputs.busy.how, f"1 - busy share; busy: {inputs.busy.source}")]
    base = busy
    if inputs.audited is not None:
        audited = _within(busy, inputs.audited, "audited processes' share", "device's busy", notes)
        losses.append(
            step(OTHER, busy - audited, inputs.audited.how, f"busy - audited; audited: {inputs.audited.source}")
        )
        base = audited
    compute = base
    if inputs.computing is not None:
        compute = _within(base, inputs.computing, "computing share", "audited busy share", notes)
        losses.append(
            step(
                NOT_COMPUTING,
                base - compute,
                inputs.computing.how,
                f"busy - computing; computing: {inputs.computing.source}",
            )
        )
    elif inputs.not_computing_missing:
        notes.append(f"{NOT_COMPUTING}: not measured on this device ({inputs.not_computing_missing})")
    if inputs.useful_flops is None:
        losses.append(step(UNSPLIT, compute, inputs.busy.how, inputs.useful_missing or "no count of the work done"))
        return Waterfall(
            inputs.device,
            inputs.precision,
            inputs.window_s,
            purchased,
            tuple(losses),
            None,
            inputs.ceiling,
            tuple(notes),
        )
    useful = inputs.useful_flops.value / purchased_flops
    if useful > compute:
        notes.append(
            f"the useful work ({useful:.1%} of the peak) exceeds the computing share {compute:.1%}: the peak or "
            "the FLOP count is off; the busy share is taken as the useful one"
        )
        useful = compute
    gap = compute - useful
    batch_loss = precision_loss = 0.0
    if inputs.batch is not None:
        batch_loss = min(gap, useful * (inputs.batch.value - 1.0))
        losses.append(
            step(
                BATCH,
                batch_loss,
                "derived",
                f"useful x (factor - 1), factor {inputs.batch.value:.2f} "
                f"at {inputs.batch.better}: {inputs.batch.evidence}",
            )
        )
    if inputs.precision_gain is not None:
        batch_factor = inputs.batch.value if inputs.batch is not None else 1.0
        precision_loss = min(gap - batch_loss, useful * batch_factor * (inputs.precision_gain.value - 1.0))
        losses.append(
            step(
                PRECISION,
                precision_loss,
                "derived",
                f"useful x batch factor x (factor - 1), factor "
                f"{inputs.precision_gain.value:.2f} with {inputs.precision_gain.better}: "
                f"{inputs.precision_gain.evidence}",
            )
        )
    below = max(0.0, gap - batch_loss - precision_loss)
    remainder_of = "computing" if inputs.computing is not None else "busy"
    losses.append(
        step(
            BELOW_PEAK if inputs.computing is not None else "busy, not useful",
            below,
            "computed",
            f"the remainder: {remainder_of} - useful - the steps above"
            + ("" if inputs.computing is not None else " (overheads and kernel efficiency, not separable here)"),
        )
    )
    useful_step = step(USEFUL, useful, inputs.useful_flops.how, inputs.useful_flops.source)
    return Waterfall(
        inputs.device,
        inputs.precision,
        inputs.window_s,
        purchased,
        tuple(losses),
        useful_step,
        inputs.ceiling,
        tuple(notes),
    )

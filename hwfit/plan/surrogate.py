"""The search's estimate of unmeasured points: a rank-one model in log time, per device.

    log s(family, layout, batch) ≈ e[family] + g[layout](batch)

`e` is how fast a family (backend × precision) is; `g` is how a layout (K replicas × t threads)
and a batch size scale any family's batch time on that device. One screening point per family
fixes its `e`; a few points of the leading family along the batch axis and across layouts fix `g`
for every family. Until a cell of `g` has data it follows a prior: below the screened batch, time
in proportion to the batch (no fixed cost: optimistic); above it, an affine batch time with a fixed
cost of two samples; and ideal scaling across layouts. Estimates are made
optimistic by a margin — larger where the cell has no data — so the search keeps looking where
the model is unsure (see search.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hwfit.core import Config, Family, Layout
from hwfit.plan.configs import ConfigPoints

PRIOR_OVERHEAD_SAMPLES = 2.0  # s(b) ∝ (2 + b) before any data on the batch axis
MARGIN_KNOWN = 0.05  # optimism where the cell was measured on another family
MARGIN_UNKNOWN = 0.15  # ... and where it follows the prior
ROUNDS = 8


@dataclass
class RankOneModel:
    """Fitted e (per family) and g (per device, layout, batch) in natural log of ms."""

    reference_batch: int
    reference_layouts: dict[Family, Layout]
    device_cores: dict[str, int | None]
    e: dict[Family, float] = field(default_factory=dict)
    g: dict[tuple[str, Layout, int], float] = field(default_factory=dict)  # cells with data
    # how differently families measured on a layout depart from the shared g there (max - min of
    # their mean residuals); absent until two families have been measured on it
    layout_spread: dict[tuple[str, Layout], float] = field(default_factory=dict)

    def prior(self, device: str, reference: Layout, layout: Layout, batch: int) -> float:
        if batch < self.reference_batch:  # below: time in proportion to the batch (optimistic: no fixed cost)
            shape = math.log(batch / self.reference_batch)
        else:  # above: an affine batch time with a fixed cost of a couple of samples
            shape = math.log((PRIOR_OVERHEAD_SAMPLES + batch) / (PRIOR_OVERHEAD_SAMPLES + self.reference_batch))
        return shape + math.log(ideal_ratio(reference, layout, self.device_cores.get(device)))

    def g_at(self, family: Family, layout: Layout, batch: int) -> tuple[float, bool]:
        """g for a cell, and whether it rests on data (this cell, or this layout's other cells)."""
        device = family.device
        reference = self.reference_layouts[family]
        if (device, layout, batch) in self.g:
            return self.g[(device, layout, batch)], True
        residual = self._residual(device, layout, batch, reference)
        prior = self.prior(device, reference, layout, batch)
        if residual is None:
            return prior, False
        return prior + residual, False

    def _residual(self, device: str, layout: Layout, batch: int, reference: Layout) -> float | None:
        """Data minus prior at the nearest measured batch of this layout (in log2 batch); for a
        layout never measured, the reference layout's residual (its batch shape) at that batch."""
        for source in (layout, reference):
            cells = [(b, value) for (d, at, b), value in self.g.items() if d == device and at == source]
            if cells:
                nearest, value = min(cells, key=lambda cell: (abs(math.log2(cell[0] / batch)), cell[0]))
                return value - self.prior(device, reference, source, nearest)
        return None

    def g_estimate(self, family: Family, layout: Layout, batch: int) -> tuple[float, bool]:
        """g for estimating an unmeasured point of `family`: the fitted cell, except that a layout
        other than the family's reference is never made slower than ideal scaling from the
        reference predicts. How K replicas x t threads scale is the backend's own affair (one may
        share cores well, another ignore its thread count), so what other families taught about a
        layout may only make this family's estimate faster, never rule a layout out unmeasured."""
        g, known = self.g_at(family, layout, batch)
        reference = self.reference_layouts[family]
        if layout == reference:
            return g, known
        shape, _ = self.g_at(family, reference, batch)  # the batch shape at the reference layout
        ideal = shape + math.log(ideal_ratio(reference, layout, self.device_cores.get(family.device)))
        if g <= ideal:
            return g, known
        # slower than ideal: believe it as far as the families measured on this layout agree
        spread = self.layout_spread.get((family.device, layout))
        if spread is None:
            return ideal, False
        return max(g - spread, ideal), known

    def estimate_ms(self, key: Config, batch: int) -> float | None:
        """Optimistic service time of an unmeasured point (None when its family was never measured)."""
        if key.family not in self.e:
            return None
        g, known = self.g_estimate(key.family, key.layout, batch)
        margin = MARGIN_KNOWN if known else MARGIN_UNKNOWN
        return math.exp(self.e[key.family] + g) * (1.0 - margin)

    def estimate_across_layouts_ms(
        self, key: Config, batch: int, siblings: dict[Layout, dict[int, float]]
    ) -> float | None:
        """Optimistic time at `batch` of a configuration whose family was measured at that batch on
        other layouts: the fastest of those times carried to this layout by the layout's ratio there.
        A family's batch shape is its own (an int8 kernel keeps gaining to batch 64 where fp32 peaks
        at 8), so where the family itself has been measured at a batch, that outranks the shape
        other families taught."""
        if key.family not in self.e:
            return None
        estimates = []
        for layout, times in siblings.items():
            if batch not in times or not within(layout, key.layout):
                continue
            g, known = self.g_estimate(key.family, key.layout, batch)
            g_there, known_there = self.g_estimate(key.family, layout, batch)
            margin = MARGIN_KNOWN if known and known_there else MARGIN_UNKNOWN
            estimates.append(times[batch] * math.exp(g - g_there) * (1.0 - margin))
        return min(estimates) if estimates else None

    def estimate_from_own_ms(self, key: Config, batch: int, own: dict[int, float]) -> float:
        """Optimistic time at `batch` of a configuration measured at other batch sizes: its own time at
        the nearest measured batch (in log2) times the shared batch shape between the two."""
        nearest = min(own, key=lambda b: (abs(math.log2(b / batch)), b))
        g, known = self.g_estimate(key.family, key.layout, batch)
        g_nearest, _ = self.g_estimate(key.family, key.layout, nearest)
        margin = MARGIN_KNOWN if known else MARGIN_UNKNOWN
        return own[nearest] * math.exp(g - g_nearest) * (1.0 - margin)


def fit(
    groups: dict[Config, ConfigPoints],
    reference_layouts: dict[Family, Layout],
    reference_batch: int,
    device_cores: dict[str, int | None],
) -> RankOneModel:
    """Alternate: e = mean(log s − g) per family, g = mean(log s − e) per cell; g at the reference
    cell of each device pinned to 0 so the split is unique."""
    model = RankOneModel(reference_batch, reference_layouts, device_cores)
    observations = [
        (key, batch, math.log(ms))
        for key, group in groups.items()
        for batch, ms in group.service_ms().items()
        if key.family in reference_layouts
    ]
    if not observations:
        return model
    for _ in range(ROUNDS):
        model.e = _fit_e(model, observations)
        model.g = _fit_g(model, observations)
    model.e = _fit_e(model, observations)
    model.layout_spread = _layout_spread(model, observations)
    return model


def _layout_spread(model: RankOneModel, observations) -> dict[tuple[str, Layout], float]:
    """Per (device, layout): max - min over families of their mean residual log s - e - g there."""
    residuals: dict[tuple[str, Layout], dict[Family, list[float]]] = {}
    for key, batch, log_ms in observations:
        g, _ = model.g_at(key.family, key.layout, batch)
        residuals.setdefault((key.family.device, key.layout), {}).setdefault(key.family, []).append(
            log_ms - model.e[key.family] - g
        )
    spreads = {}
    for cell, by_family in residuals.items():
        if len(by_family) >= 2:
            means = [sum(values) / len(values) for values in by_family.values()]
            spreads[cell] = max(means) - min(means)
    return spreads


def _fit_e(model: RankOneModel, observations) -> dict[Family, float]:
    sums: dict[Family, list[float]] = {}
    for key, batch, log_ms in observations:
        g, _ = model.g_at(key.family, key.layout, batch)
        sums.setdefault(key.family, []).append(log_ms - g)
    return {family: sum(values) / len(values) for family, values in sums.items()}


def _fit_g(model: RankOneModel, observations) -> dict[tuple[str, Layout, int], float]:
    sums: dict[tuple[str, Layout, int], list[float]] = {}
    for key, batch, log_ms in observations:
        if key.family in model.e:
            sums.setdefault((key.family.device, key.layout, batch), []).append(log_ms - model.e[key.family])
    cells = {cell: sum(values) / len(values) for cell, values in sums.items()}
    # pin the scale: per device, g at the reference layout and batch is 0 (the prior's value there)
    for device in {cell[0] for cell in cells}:
        references = [
            cells[c]
            for c in cells
            if c[0] == device and c[2] == model.reference_batch and c[1] in model.reference_layouts.values()
        ]
        if references:
            shift = sum(references) / len(references)
            cells = {c: (v - shift if c[0] == device else v) for c, v in cells.items()}
    return cells


def within(smaller: Layout, larger: Layout) -> bool:
    """Whether `larger` has at least the replicas and the threads of `smaller`: then ideal scaling from
    `smaller` bounds what `larger` can do (neither replicas nor threads scale better than linearly);
    from a layout with more threads per replica it bounds nothing (1 x 2 threads may use its second
    thread badly where 2 x 1 thread uses both cores fully)."""
    if smaller.threads is None or larger.threads is None:
        return smaller == larger
    return smaller.replicas <= larger.replicas and smaller.threads <= larger.threads


def ideal_ratio(source: Layout, target: Layout, cores: int | None) -> float:
    """Per-batch time of `target` over `source` if threads scaled perfectly (t of T threads: T/t)."""
    source_threads = source.threads or cores or 1
    target_threads = target.threads or cores or 1
    return max(source_threads / target_threads, 0.05)

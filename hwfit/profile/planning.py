"""The measurement side of planning one model on this machine: its grid of variants on the devices
asked for, the points of it already stored, and a point session opened on the first `measure`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from functools import cached_property

from hwfit.core import HwfitError, Variant, usable_threads
from hwfit.hardware import device_names
from hwfit.models import Model
from hwfit.profile.environment import capture_environment
from hwfit.profile.grid import grid_variants
from hwfit.profile.sweep import PointExecutor, PointSession, SweepObserver, open_point_session
from hwfit.profile.sweepspec import build_spec
from hwfit.store import Measurement, ResultsStore

PLAN_WARMUP_S = 2.0  # warm-up seconds per point for the planner
INTERRUPTED_NOTE = "stopped by the user; `hwfit plan` again reuses what was measured"


def stored_points(store: ResultsStore, model: Model) -> tuple[list[Measurement], list[int]]:
    """Stored points of this model measured on this machine (same host and CPU), newest first, and
    the runs they came from; a CPU point measured with the default threads is the same as one with
    every core."""
    here = capture_environment()
    seen, points, run_ids = set(), [], []
    for run, measurement in store.measurements_for_model(model.content_hash):
        environment = run.environment
        if (environment.hostname_hash, environment.cpu_model) != (here.hostname_hash, here.cpu_model):
            continue
        variant = measurement.as_variant()
        if variant.device == "cpu" and variant.threads is None:
            variant = replace(variant, threads=usable_threads())
        if variant.key in seen:
            continue
        seen.add(variant.key)
        measurement.variant, measurement.variant_key = variant.to_dict(), variant.key
        points.append(measurement)
        if run.id not in run_ids:
            run_ids.append(run.id)
    return points, run_ids


class PlanningSession:
    """What the planner measures with, for one model on this machine.

    `variants` is the grid on the asked-for devices present here (`unavailable`: the families that
    cannot run, with why); `stored_points` what the store already holds of it; `measure` measures
    more, in one run opened on its first call and recorded like every sweep. `run_ids` lists the runs
    the points come from, the opened one appended when it opens. Used as a context manager it closes
    that run: complete, interrupted on Ctrl-C (with a note saying how to resume), failed on an error.
    """

    def __init__(
        self,
        model: Model,
        devices: Iterable[str],
        store: ResultsStore,
        observer: SweepObserver,
        *,
        point_seconds: float,
        warmup_s: float = PLAN_WARMUP_S,
        args: dict | None = None,
        origin: str = "hwfit plan",
        interrupted_note: str = INTERRUPTED_NOTE,
        executor: PointExecutor | None = None,
        available: Iterable[str] | None = None,
    ):
        self.model, self.store, self.observer = model, store, observer
        self.executor = executor  # where the points run (None: here, each in its own process)
        # the devices present where the points run: this machine's, or a cluster's nodes' (`available`)
        here = set(device_names() if available is None else available)
        self.devices = [device for device in devices if device in here]
        self.spec = build_spec({"budget_s": point_seconds, "warmup_s": warmup_s}, origin=origin)
        self.args = args or {}
        self.interrupted_note = interrupted_note
        self.session: PointSession | None = None  # opened by the first `measure`
        self.closed = False

    # Computed on first use, so that whoever plans can refuse a bad request before the grid is built.
    @cached_property
    def _grid(self) -> tuple[list[Variant], list[tuple[Variant, str]]]:
        return grid_variants(self.model, self.devices)

    @property
    def variants(self) -> list[Variant]:
        return self._grid[0]

    @property
    def unavailable(self) -> list[tuple[Variant, str]]:
        return self._grid[1]

    @cached_property
    def _stored(self) -> tuple[list[Measurement], list[int]]:
        return stored_points(self.store, self.model)

    @property
    def stored_points(self) -> list[Measurement]:
        return self._stored[0]

    @cached_property
    def run_ids(self) -> list[int]:
        return list(self._stored[1])

    def measure(self, variants: list[Variant]) -> list[Measurement]:
        if self.closed:
            raise HwfitError("this planning session is closed: open another to measure more")
        if self.session is None:
            self.session = open_point_session(
                self.model, self.spec, self.store, self.observer, set(self.devices), self.args, self.executor
            )
            self.run_ids.append(self.session.run_id)
        return self.session.measure(variants)

    def close(self, status: str = "complete", note: str | None = None) -> None:
        """End the measuring run if one was opened (nothing to do otherwise); a second close does nothing."""
        if self.closed:
            return
        self.closed = True
        if self.session is not None:
            self.session.close(status, note)

    def __enter__(self) -> PlanningSession:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
        elif issubclass(kind, KeyboardInterrupt):
            self.close("interrupted", self.interrupted_note)
        else:
            self.close("failed", f"{kind.__name__}: {error}")

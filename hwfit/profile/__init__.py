"""Profiling: what a model really costs on each variant. A sweep measures each point in its own
process (warm-up until settled, then until the median is known to ±2%) and records it in the store;
the quick check (`hwfit variants`) is the short version without the store."""

from hwfit.profile.ceilings import cached_ceilings, ceilings_job
from hwfit.profile.environment import capture_environment
from hwfit.profile.grid import GRID_BATCHES, cpu_layouts, grid_variants
from hwfit.profile.isolation import JobOutcome, run_isolated
from hwfit.profile.planning import PLAN_WARMUP_S, PlanningSession, stored_points
from hwfit.profile.point import PointPlan, measure_point
from hwfit.profile.quick import check_dict, check_reason, check_verdict, quick_check, reference_outputs, run_in_batches
from hwfit.profile.rounds import Arm, RoundSettings, RoundsOutcome, combine_rounds, measure_rounds
from hwfit.profile.stats import StopRule, WarmupRule, latency_summary, median_ci95
from hwfit.profile.sweep import (
    PRECISION_DTYPE,
    FamilyOutcome,
    LocalExecutor,
    PointExecutor,
    PointSession,
    SweepObserver,
    SweepResult,
    open_point_session,
    plan_families,
    sweep,
)
from hwfit.profile.sweepspec import SweepSpec, build_spec, load_sweep_file

__all__ = [
    "PRECISION_DTYPE",
    "JobOutcome",
    "LocalExecutor",
    "PointExecutor",
    "PointPlan",
    "cached_ceilings",
    "ceilings_job",
    "measure_point",
    "run_isolated",
    "Arm",
    "RoundSettings",
    "RoundsOutcome",
    "combine_rounds",
    "measure_rounds",
    "FamilyOutcome",
    "GRID_BATCHES",
    "cpu_layouts",
    "grid_variants",
    "PointSession",
    "StopRule",
    "SweepObserver",
    "SweepResult",
    "SweepSpec",
    "WarmupRule",
    "build_spec",
    "capture_environment",
    "check_dict",
    "check_reason",
    "check_verdict",
    "latency_summary",
    "load_sweep_file",
    "median_ci95",
    "open_point_session",
    "plan_families",
    "quick_check",
    "reference_outputs",
    "run_in_batches",
    "sweep",
    "PLAN_WARMUP_S",
    "PlanningSession",
    "stored_points",
]

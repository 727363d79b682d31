"""Planning: SLOs, feasibility, the measure-few search, batching and replica choices, Pareto fronts,
the plan schema and exports; pure functions of measurements (latency models come from hwfit.simulate)."""

from hwfit.plan.batching import PREFERENCES, BatchingChoice, NoBatchingFit, choose_batching
from hwfit.plan.evaluate import CONSTRAINTS, JOULES_PER_KWH, DeviceOffer, Evaluation, evaluate_at
from hwfit.plan.pareto import ParetoError, ParetoSplit, pareto_front, pareto_split
from hwfit.plan.planner import PlanRequest, make_plan
from hwfit.plan.schema import (
    PLAN_SCHEMA,
    POOL_ROLES,
    Candidate,
    Expected,
    Infeasibility,
    ModelRef,
    Plan,
    PlanError,
    PoolPlan,
    SearchStats,
    load_plan,
    parse_plan,
)
from hwfit.plan.search import Grid, SearchOutcome, search
from hwfit.plan.slo import OBJECTIVES, DeviceAllowance, Slo, SloError, load_slo, parse_slo
from hwfit.plan.triton import ExportError, TritonExport, config_pbtxt, export_triton
from hwfit.plan.verify import VerifyError, pool_config, verify_plan
from hwfit.plan.workflow import (
    MeasurementSource,
    choose_baseline,
    device_offers,
    machine_devices_note,
    plan_deployment,
    planned_devices,
)

__all__ = [
    "MeasurementSource",
    "choose_baseline",
    "device_offers",
    "machine_devices_note",
    "planned_devices",
    "plan_deployment",
    "CONSTRAINTS",
    "JOULES_PER_KWH",
    "DeviceOffer",
    "Evaluation",
    "evaluate_at",
    "VerifyError",
    "pool_config",
    "verify_plan",
    "ExportError",
    "Grid",
    "PlanRequest",
    "SearchOutcome",
    "TritonExport",
    "config_pbtxt",
    "export_triton",
    "make_plan",
    "search",
    "PLAN_SCHEMA",
    "POOL_ROLES",
    "Candidate",
    "Expected",
    "Infeasibility",
    "ModelRef",
    "Plan",
    "PlanError",
    "PoolPlan",
    "SearchStats",
    "load_plan",
    "parse_plan",
    "ParetoError",
    "ParetoSplit",
    "pareto_front",
    "pareto_split",
    "OBJECTIVES",
    "PREFERENCES",
    "BatchingChoice",
    "DeviceAllowance",
    "NoBatchingFit",
    "Slo",
    "SloError",
    "choose_batching",
    "load_slo",
    "parse_slo",
]

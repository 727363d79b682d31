"""The plan file: the pools chosen for a model, their fallback order, the SLO they were chosen for,
the measurements they rest on, and why — a YAML file a person can read, edit and serve.

`Plan` is validated on load (pydantic, unknown fields rejected) so an edited plan that breaks
the schema fails with the field named, before a server starts on it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hwfit.core import HwfitError
from hwfit.plan.slo import Slo

PLAN_SCHEMA = "hwfit.plan/1"
POOL_ROLES = ("primary", "overflow", "fallback")


class PlanError(HwfitError):
    """A plan file is missing, not YAML, or breaks the schema; the message names file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Expected(_Strict):
    """What a pool (or the whole plan) is predicted to do at the rate it is given."""

    rate_rps: float = Field(ge=0, description="requests per second this pool is planned to serve")
    p50_ms: float | None = None
    p99_ms: float | None = None
    capacity_rps: float = Field(ge=0, description="the most it can serve: replicas x B / service time(B)")
    utilization: float | None = Field(default=None, description="busy share at rate_rps")
    j_per_inference: float | None = None
    energy_how: str | None = None  # measured | integrated | estimated
    cost_per_million: float | None = None
    accuracy_loss: float | None = None
    how: str = Field(default="", description="how the latency was obtained (simulation, approximation, measured)")


class PoolPlan(_Strict):
    """One pool: `replicas_per_device` replicas of one variant on each of `devices` units of `device`,
    fed by one dynamic batcher (`max_batch_size`, `max_queue_delay_ms`)."""

    name: str = Field(min_length=1)
    role: Literal["primary", "overflow", "fallback"]
    tier: Literal["full", "degraded"] = Field(
        default="full",
        description="degraded: a cheaper variant outside the accuracy target, serving only requests that allow "
        "the degraded tier and whose deadline no full-tier pool can meet",
    )
    variant: str = Field(description="variant key, batch size = max_batch_size, e.g. ort/cpu/int8-dynamic/b8/t1")
    backend: str
    device: str
    precision: str
    threads: int | None = Field(default=None, ge=1)
    knobs: dict[str, str] = Field(default_factory=dict, description="backend knobs, without replicas")
    devices: int = Field(default=1, ge=1, description="units of `device` this pool uses")
    replicas_per_device: int = Field(default=1, ge=1)
    max_batch_size: int = Field(ge=1)
    max_queue_delay_ms: float = Field(ge=0)
    service_ms: dict[int, float] = Field(
        description="batch size -> measured service time (ms, p50 per batch, replicas running together)"
    )
    expected: Expected
    measured_from: list[str] = Field(default_factory=list, description="variant keys of the measurements used")
    node_group: str | None = Field(
        default=None,
        description="on a Ray cluster: the node group (label from `hwfit devices --ray`) whose nodes run this "
        "pool; absent: the machine `hwfit serve` runs on",
    )

    @property
    def replicas(self) -> int:
        return self.devices * self.replicas_per_device

    @model_validator(mode="after")
    def _curve_not_empty(self) -> PoolPlan:
        if not self.service_ms:
            raise ValueError(f"pool {self.name!r}: service_ms needs at least one (batch size: ms) entry")
        if any(b < 1 or ms <= 0 for b, ms in self.service_ms.items()):
            raise ValueError(f"pool {self.name!r}: service_ms keys must be batch sizes >= 1 and values ms > 0")
        return self


class Candidate(_Strict):
    """One configuration the planner evaluated, with what it would do and, if rejected, why."""

    config: str = Field(description="variant family x replicas, e.g. ort/cpu/int8-dynamic/t1 x2")
    device: str
    devices: int = 1
    replicas_per_device: int = 1
    max_batch_size: int | None = None
    max_queue_delay_ms: float | None = None
    p99_ms: float | None = None
    capacity_rps: float | None = None
    accuracy_loss: float | None = None
    j_per_inference: float | None = None
    cost_per_million: float | None = None
    objective_value: float | None = None
    verdict: Literal["chosen", "feasible", "rejected"]
    broke: list[str] = Field(default_factory=list, description="constraints it breaks, e.g. latency_p99_ms")
    why: str = ""
    on_front: bool = False


class Infeasibility(_Strict):
    """Why no plan meets the SLO, and the nearest targets that can be met."""

    constraints: list[str] = Field(description="the SLO fields no candidate meets together")
    message: str
    nearest: dict[str, float] = Field(default_factory=dict, description="SLO field -> best reachable value")
    best_candidate: str | None = None


class SearchStats(_Strict):
    grid_size: int = Field(ge=0, description="points in the full grid (every batch, thread, replica option)")
    measured: int = Field(ge=0, description="points measured for this plan")
    reused: int = Field(ge=0, description="points already in the store")
    run_ids: list[int] = Field(default_factory=list)
    method: str = ""


class ModelRef(_Strict):
    name: str
    source: str
    hash: str


class Plan(_Strict):
    """The deployment: pools, fallback chain, the SLO, the evidence, and the explanation."""

    schema_: Literal["hwfit.plan/1"] = Field(default=PLAN_SCHEMA, alias="schema")
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    model: ModelRef
    slo: Slo
    feasible: bool
    pools: list[PoolPlan] = Field(default_factory=list)
    fallback: list[str] = Field(default_factory=list, description="pool names, in the order to fail over")
    expected: Expected | None = None
    answer: str = Field(default="", description="the plan in one paragraph")
    assumptions: list[str] = Field(default_factory=list)
    candidates: list[Candidate] = Field(default_factory=list)
    infeasible: Infeasibility | None = None
    search: SearchStats

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        names = [pool.name for pool in self.pools]
        if len(set(names)) != len(names):
            raise ValueError(f"pool names must be unique, got {names}")
        unknown = [name for name in self.fallback if name not in names]
        if unknown:
            raise ValueError(f"fallback names pools that do not exist: {unknown}; pools are {names}")
        if self.feasible and not any(pool.role == "primary" for pool in self.pools):
            raise ValueError("a feasible plan needs at least one pool with role: primary")
        return self

    def pool(self, name: str) -> PoolPlan:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise PlanError(f"plan has no pool {name!r}; pools are {[p.name for p in self.pools]}")

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=110)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml())
        return path


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file; every problem becomes a `PlanError` naming file and field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PlanError(f"{path}: cannot read the plan file ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise PlanError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise PlanError(f"{path}: a plan file is a YAML mapping (written by `hwfit plan`), got {type(data).__name__}")
    return parse_plan(data, source=str(path))


def parse_plan(data: dict, source: str = "<plan>") -> Plan:
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "(file)"
            lines.append(f"{where}: {error['msg'].removeprefix('Value error, ')} (got {error.get('input')!r:.80})")
        raise PlanError(f"{source}: invalid plan:\n  " + "\n  ".join(lines)) from None

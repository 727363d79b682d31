"""The SLO file: the targets and limits a plan must meet, read from YAML and validated."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hwfit.core import OBJECTIVE_METRICS, HwfitError

OBJECTIVES = tuple(OBJECTIVE_METRICS)  # cost, energy, latency, throughput: each optimises one metric


class SloError(HwfitError):
    """An SLO file is missing, not YAML, or breaks the schema; the message names file and field."""


class DeviceAllowance(BaseModel):
    """How many of one device the plan may use, and (optionally) what one costs per hour."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, description="an integer >= 1")
    price_per_hour: float | None = Field(default=None, ge=0, description="USD per hour, >= 0 (optional)")


class Slo(BaseModel):
    """Targets (latency, throughput) and limits (accuracy, energy, cost) for one deployment."""

    model_config = ConfigDict(extra="forbid")

    latency_p99_ms: float = Field(gt=0, description="a number > 0 (milliseconds)")
    throughput_rps: float = Field(gt=0, description="a number > 0 (sustained requests per second)")
    peak_rps: float | None = Field(default=None, gt=0, description="a number >= throughput_rps (optional)")
    max_accuracy_loss: float | None = Field(
        default=None,
        ge=0,
        description="a number >= 0 in the model's metric: 1 - mean cosine to fp32 for embeddings, "
        "drop in top-1 agreement for classifiers (optional)",
    )
    max_energy_j_per_inference: float | None = Field(default=None, gt=0, description="a number > 0 (joules, optional)")
    max_cost_per_million: float | None = Field(default=None, gt=0, description="a number > 0 (USD, optional)")
    objective: Literal["cost", "energy", "latency", "throughput"] = Field(
        description="one of: " + ", ".join(OBJECTIVES)
    )
    devices: dict[str, DeviceAllowance] | None = Field(
        default=None,
        min_length=1,
        description='a mapping device name ("cpu", "cuda:0", ...) -> {count: int >= 1, price_per_hour: USD '
        "(optional)}; "
        "optional: without it the plan is for this machine's devices, as `hwfit devices` lists them",
    )
    price_per_kwh: float = Field(default=0.15, ge=0, description="a number >= 0 (USD per kWh, default 0.15)")
    headroom: float = Field(
        default=0.7, gt=0, le=1, description="a number in (0, 1] (target busy share at the sustained rate, default 0.7)"
    )

    @field_validator(
        "latency_p99_ms",
        "throughput_rps",
        "peak_rps",
        "max_accuracy_loss",
        "max_energy_j_per_inference",
        "max_cost_per_million",
        "price_per_kwh",
        "headroom",
        mode="before",
    )
    @classmethod
    def _no_booleans(cls, value: object) -> object:
        # YAML reads `yes`/`true` as a boolean, which pydantic would take as 1.0: almost surely a slip
        if isinstance(value, bool):
            raise ValueError(f"got {value!r}, a boolean; expected a number")
        return value

    @model_validator(mode="after")
    def _peak_not_below_sustained(self) -> Slo:
        if self.peak_rps is not None and self.peak_rps < self.throughput_rps:
            raise ValueError(
                f"peak_rps ({self.peak_rps:g}) must be >= throughput_rps ({self.throughput_rps:g}): "
                "the peak is the highest rate, the sustained rate is the usual one"
            )
        return self

    @property
    def names_devices(self) -> bool:
        """Whether the file lists its devices (else the plan is for this machine's, `with_devices`)."""
        return self.devices is not None

    def with_devices(self, names: list[str]) -> Slo:
        """This SLO with one of each of `names` allowed, when it lists no devices; else itself."""
        if self.devices is not None:
            return self
        return self.model_copy(update={"devices": {name: DeviceAllowance(count=1) for name in names}})


def load_slo(path: str | Path) -> Slo:
    """Read and validate an SLO file; every problem becomes an `SloError` naming file and field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SloError(f"{path}: cannot read the SLO file ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SloError(f"{path}: not valid YAML ({_first_line(exc)})") from exc
    if not isinstance(data, dict):
        raise SloError(
            f"{path}: an SLO file must be a YAML mapping of fields ({', '.join(Slo.model_fields)}), "
            f"got {type(data).__name__}"
        )
    return parse_slo(data, source=str(path))


def parse_slo(data: dict, source: str = "<slo>") -> Slo:
    """Validate an already-parsed mapping; `source` names it in error messages."""
    try:
        return Slo.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
        raise SloError(f"{source}: invalid SLO:\n  " + "\n  ".join(problems)) from None


def _describe(error: dict) -> str:
    """One line per pydantic error: the dotted field, what was wrong, what is allowed."""
    location = [str(part) for part in error["loc"]]
    field_path = ".".join(location) or "(file)"
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_fields(location)
        return f"{field_path}: unknown field; allowed fields are: {', '.join(allowed)}"
    if kind == "missing":
        return f"{field_path}: required field is missing; expected {_expected(location)}"
    if not location:  # a model-level (cross-field) check such as peak_rps < throughput_rps
        return error["msg"].removeprefix("Value error, ")
    if kind == "value_error":
        return f"{field_path}: {error['msg'].removeprefix('Value error, ')}"
    return f"{field_path}: got {error.get('input')!r} ({error['msg']}); expected {_expected(location)}"


def _model_at(location: list[str]) -> type[BaseModel]:
    """The model that owns the last part of `location` (Slo, or DeviceAllowance under devices.X)."""
    if location and location[0] == "devices" and len(location) >= 3:
        return DeviceAllowance
    return Slo


def _allowed_fields(location: list[str]) -> list[str]:
    return list(_model_at(location).model_fields)


def _expected(location: list[str]) -> str:
    model = _model_at(location)
    name = location[-1] if location else ""
    if name in model.model_fields:
        return model.model_fields[name].description or "a valid value"
    # e.g. devices.cpu itself is not a mapping
    if location and location[0] == "devices":
        return Slo.model_fields["devices"].description or "a mapping"
    return "a valid value"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

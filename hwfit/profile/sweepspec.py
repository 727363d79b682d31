"""What a sweep covers: backends × devices × precisions × threads × knobs, with batch sizes either
listed or grown as powers of two until throughput stops rising. Read from flags or a YAML file."""

from __future__ import annotations

import hashlib
import json
from itertools import product
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hwfit.backends import backend_names
from hwfit.core import PRECISIONS, HwfitError


class SweepSpec(BaseModel):
    """A sweep's settings. Every field has a default found from the hardware or a sane constant."""

    model_config = ConfigDict(extra="forbid")

    backends: list[str] | None = Field(None, description="backends to sweep; default: every installed one")
    devices: list[str] | None = Field(None, description="devices; default: every device found")
    precisions: list[str] | None = Field(None, description="precisions; default: every one each backend implements")
    batch_sizes: list[int] | None = Field(None, description="explicit batch sizes; default: grow 1, 2, 4, ...")
    max_batch: int = Field(256, ge=1, description="largest batch the growth rule tries")
    min_gain: float = Field(0.03, ge=0.0, le=1.0, description="stop growing when throughput rises less than this")
    max_latency_ms: float | None = Field(1000.0, gt=0, description="stop growing past this p50 batch latency (ms)")
    threads: list[int] | None = Field(None, description="intra-op threads; default: all usable cores")
    replicas: list[int] | None = Field(
        None,
        description="replicas running together on a device, measured as one point (K replicas x t threads); default: 1",
    )
    knobs: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict, description="backend -> knob -> values, e.g. torch-compile: {mode: [default]}"
    )
    budget_s: float = Field(8.0, gt=0, description="measuring time budget per point")
    warmup_s: float = Field(4.0, gt=0, description="warm-up time budget per point")
    target_ci: float = Field(0.02, gt=0, lt=1, description="stop when the median's 95% CI is within ±this")
    timeout_s: float = Field(600.0, gt=0, description="kill a point's process after this long")
    processes: int = Field(
        1,
        ge=1,
        le=10,
        description="measure each point in this many fresh processes; "
        "flag it unstable when their medians disagree (process-to-process noise)",
    )

    @field_validator("backends")
    @classmethod
    def _known_backends(cls, value):
        for name in value or []:
            if name not in backend_names(include_emulated=True):
                raise ValueError(f"unknown backend '{name}'; expected one of {', '.join(backend_names(True))}")
        return value

    @field_validator("precisions")
    @classmethod
    def _known_precisions(cls, value):
        for name in value or []:
            if name not in PRECISIONS:
                raise ValueError(f"unknown precision '{name}'; expected one of {', '.join(PRECISIONS)}")
        return value

    @field_validator("batch_sizes", "threads", "replicas")
    @classmethod
    def _positive(cls, value):
        for number in value or []:
            if number < 1:
                raise ValueError(f"must be positive integers, got {number}")
        return value

    def key(self, model_hash: str) -> str:
        """Identifies 'the same arguments' for resuming: the model's content and every setting."""
        payload = json.dumps({"model": model_hash, "spec": self.model_dump()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    def batch_plan(self) -> list[int]:
        if self.batch_sizes:
            return sorted(set(self.batch_sizes))
        sizes, size = [], 1
        while size <= self.max_batch:
            sizes.append(size)
            size *= 2
        return sizes

    @property
    def grows(self) -> bool:
        """True when batch sizes are found by the growth rule rather than listed."""
        return not self.batch_sizes


def load_sweep_file(path: str | Path, overrides: dict | None = None) -> SweepSpec:
    """Read a YAML sweep file; errors name the file, the field and what was expected."""
    path = Path(path)
    if not path.exists():
        raise HwfitError(f"sweep file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise HwfitError(f"sweep file {path} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise HwfitError(f"sweep file {path} must hold a mapping of settings, got {type(data).__name__}")
    return build_spec({**data, **(overrides or {})}, origin=f"sweep file {path}")


def build_spec(settings: dict, origin: str = "sweep settings") -> SweepSpec:
    try:
        return SweepSpec(**settings)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            field = ".".join(str(part) for part in item["loc"]) or "(top level)"
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = f"unknown field; allowed fields: {', '.join(SweepSpec.model_fields)}"
            problems.append(f"field '{field}': {message}")
        raise HwfitError(f"{origin}: " + "; ".join(problems)) from None


def knob_combinations(spec: SweepSpec, backend: str) -> list[tuple[tuple[str, str], ...]]:
    """Every combination of the knob values given for a backend (one empty combination if none)."""
    knobs = spec.knobs.get(backend, {})
    if not knobs:
        return [()]
    names = sorted(knobs)
    return [tuple(zip(names, values)) for values in product(*(knobs[name] for name in names))]

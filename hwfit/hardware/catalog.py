"""The spec catalog: datasheet figures per accelerator (data/specs.yaml) and computed CPU peaks.

Each record is one frozen pydantic model that validates its part of the file (errors name the entry
and field) and is the value code reads: figures in base units, source keys cited in full.
"""

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    PositiveFloat,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hwfit.core import Figure
from hwfit.hardware._errors import CatalogError
from hwfit.hardware.cpu import CpuInfo

DEFAULT_CATALOG_PATH = Path(__file__).parent / "data" / "specs.yaml"
DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")
_How = Literal["spec", "computed", "estimated"]
_TERA = 1e12
_GIGA = 1e9
# Dense over sparse is 0.5 on every 2:4-sparse part; datasheet rounding (L40S: 362.05 vs 733) stays well below this.
_MAX_DENSE_OVER_SPARSE = 0.6


def flops_unit(dtype: str) -> str:
    """Integer dtypes count operations, not floating-point operations."""
    return "OP/s" if dtype.startswith("int") else "FLOP/s"


# --- citations and figures as the file writes them ----------------------------------------------


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Source(_Record):
    title: str
    url: str | None = None


def _cite(ref: str, info: ValidationInfo) -> str:
    """A key of the file's `sources:` becomes 'title (url)'; any other text is the citation itself."""
    source = info.context.get("sources", {}).get(ref)
    if source is None:
        return ref
    return f"{source.title} ({source.url})" if source.url else source.title


def _cite_title(ref: str, info: ValidationInfo) -> str:
    # CPU formulas are long already; they cite a source by title alone (the URL is in `sources`).
    source = info.context.get("sources", {}).get(ref)
    return source.title if source else ref


_Citation = Annotated[str, AfterValidator(_cite)]
_TitleCitation = Annotated[str, AfterValidator(_cite_title)]


def _noted(text: str, note: str | None) -> str:
    return f"{text}; {note}" if note else text


class _Valued(_Record):
    value: PositiveFloat
    source: _Citation
    how: _How = "spec"
    note: str | None = None

    def figure(self, scale: float, unit: str) -> Figure:
        return Figure(self.value * scale, unit, self.how, _noted(self.source, self.note))


class _Price(_Record):
    usd: PositiveFloat
    per: Literal["gpu_hour", "unit", "core_hour"]
    how: _How
    source: _Citation
    as_of: str
    note: str | None = None

    def figure(self) -> Figure:
        unit = {"gpu_hour": "USD/GPU-hour", "core_hour": "USD/core-hour"}.get(self.per, "USD")
        return Figure(self.usd, unit, self.how, _noted(f"{self.source}, as of {self.as_of}", self.note))


def _figure_from(schema: type[_Valued] | type[_Price], *args: Any) -> PlainValidator:
    """Validate a field's mapping as `schema`, then keep it as the Figure that `schema.figure` makes."""
    return PlainValidator(lambda raw, info: schema.model_validate(raw, context=info.context).figure(*args))


class _Share(_Record):
    value: float = Field(gt=0, lt=1)
    source: _Citation
    how: _How = "estimated"
    note: str | None = None


class _DtypeTable(_Record):
    """Every dtype must be present; null says the device has no hardware path for it."""

    fp32: PositiveFloat | None
    tf32: PositiveFloat | None
    fp16: PositiveFloat | None
    bf16: PositiveFloat | None
    fp8: PositiveFloat | None
    int8: PositiveFloat | None


class _Peak(_Record):
    source: _Citation
    how: Literal["spec", "estimated"] = "spec"
    note: str | None = None
    dense: _DtypeTable
    sparse: dict[Literal["fp32", "tf32", "fp16", "bf16", "fp8", "int8"], PositiveFloat] | None = None

    @model_validator(mode="after")
    def _dense_is_half_of_sparse(self) -> "_Peak":
        # A sparse (asterisked) figure copied into the dense table is the classic datasheet
        # mistake. 2:4 structured sparsity doubles the rate, so dense must be about half.
        for dtype, sparse_value in (self.sparse or {}).items():
            dense_value = getattr(self.dense, dtype)
            if dense_value is None:
                raise ValueError(f"sparse.{dtype} is given but dense.{dtype} is null")
            if dense_value > _MAX_DENSE_OVER_SPARSE * sparse_value:
                raise ValueError(
                    f"dense.{dtype} = {dense_value} is not about half of sparse.{dtype} = {sparse_value}: "
                    f"is a with-sparsity figure in the dense table?"
                )
        return self

    def figure(self, dtype: str, tflops: float, kind: str) -> Figure:
        return Figure(tflops * _TERA, flops_unit(dtype), self.how, f"{_noted(self.source, self.note)} ({kind})")


# --- the records ----------------------------------------------------------------------------------


class DeviceSpec(_Record):
    """What a datasheet says about one accelerator. `peak_flops[dtype]` is None where it lacks the dtype."""

    key: str
    name: str
    vendor: str
    match_patterns: list[str] = Field(alias="match", min_length=1)
    peak_tflops: _Peak
    memory_bytes: Annotated[Figure, _figure_from(_Valued, _GIGA, "bytes")] = Field(alias="memory_gb")
    memory_bandwidth_bytes_per_s: Annotated[Figure, _figure_from(_Valued, _GIGA, "bytes/s")] = Field(
        alias="memory_bandwidth_gb_per_s"
    )
    tdp_w: Annotated[Figure, _figure_from(_Valued, 1.0, "W")]
    price: Annotated[Figure, _figure_from(_Price)] | None = None  # unit "USD/GPU-hour" (cloud) or "USD" (list price)

    @field_validator("match_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {error}") from error
        return patterns

    @property
    def peak_flops(self) -> dict[str, Figure | None]:
        """Dense peaks in base units (FLOP/s; int8: OP/s)."""
        peak = self.peak_tflops
        return {
            dtype: peak.figure(dtype, tflops, "dense") if tflops is not None else None
            for dtype, tflops in peak.dense.model_dump().items()
        }

    @property
    def sparse_peak_flops(self) -> dict[str, Figure]:
        sparse = self.peak_tflops.sparse or {}
        return {dtype: self.peak_tflops.figure(dtype, tflops, "2:4 sparse") for dtype, tflops in sparse.items()}

    def matches(self, device_name: str) -> bool:
        return any(re.search(pattern, device_name, re.IGNORECASE) for pattern in self.match_patterns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "vendor": self.vendor,
            "peak_flops": {dtype: figure.to_dict() if figure else None for dtype, figure in self.peak_flops.items()},
            "memory_bytes": self.memory_bytes.to_dict(),
            "memory_bandwidth_bytes_per_s": self.memory_bandwidth_bytes_per_s.to_dict(),
            "tdp_w": self.tdp_w.to_dict(),
            "price": self.price.to_dict() if self.price else None,
        }


class CpuRule(_Record):
    """A row of the per-cycle table: which CPUs it covers and what one core does per cycle."""

    name: str
    vendors: list[str] | None = None
    families: list[int] | None = None
    model_min: int | None = None
    model_max: int | None = None
    requires: list[str] = Field(min_length=1)
    fma_units: int = Field(ge=1)
    fp32_lanes: int = Field(ge=1)
    source: _TitleCitation
    assumption: str

    @property
    def fp32_flop_per_cycle(self) -> int:
        return self.fma_units * self.fp32_lanes * 2  # an FMA is a multiply and an add

    def applies_to(self, cpu: CpuInfo) -> bool:
        if self.vendors is not None and cpu.vendor not in self.vendors:
            return False
        if self.families is not None and cpu.family not in self.families:
            return False
        if self.model_min is not None and (cpu.model is None or cpu.model < self.model_min):
            return False
        if self.model_max is not None and (cpu.model is None or cpu.model > self.model_max):
            return False
        return all(cpu.has(flag) for flag in self.requires)


class DtypeRule(_Record):
    """Per-cycle rate of a narrower dtype: a fixed FLOP/cycle (AMX) or a multiple of fp32 (AVX-512)."""

    dtype: Literal["bf16", "fp16", "int8", "fp8", "tf32"]
    requires_any: list[str] = Field(min_length=1)
    flop_per_cycle: PositiveFloat | None = None
    fp32_multiple: PositiveFloat | None = None
    source: _TitleCitation
    assumption: str

    @model_validator(mode="after")
    def _exactly_one_rate(self) -> "DtypeRule":
        if (self.flop_per_cycle is None) == (self.fp32_multiple is None):
            raise ValueError("give exactly one of flop_per_cycle and fp32_multiple")
        return self

    def applies_to(self, cpu: CpuInfo) -> bool:
        return any(cpu.has(flag) for flag in self.requires_any)


class _CpuPeak(_Record):
    fp32_rules: list[CpuRule] = Field(min_length=1)
    dtype_rules: list[DtypeRule] = []


class CpuPowerRule(_Record):
    """A row of the `cpu_power` table: which CPUs it covers and their per-core package power."""

    name: str
    vendors: list[str] | None = None
    families: list[int] | None = None
    models: list[int] | None = None
    model_min: int | None = None
    model_max: int | None = None
    max_w_per_core: Annotated[Figure, _figure_from(_Valued, 1.0, "W/core")]
    share: _Share = Field(alias="idle_share")

    @property
    def idle_share(self) -> float:
        """Package idle power / full-load power."""
        return self.share.value

    @property
    def idle_share_source(self) -> str:
        return f"{self.share.how}: {_noted(self.share.source, self.share.note)}"

    @property
    def unconditional(self) -> bool:
        conditions = (self.vendors, self.families, self.models, self.model_min, self.model_max)
        return all(condition is None for condition in conditions)

    def applies_to(self, cpu: CpuInfo) -> bool:
        if self.vendors is not None and cpu.vendor not in self.vendors:
            return False
        if self.families is not None and cpu.family not in self.families:
            return False
        if self.models is not None and cpu.model not in self.models:
            return False
        if self.model_min is not None and (cpu.model is None or cpu.model < self.model_min):
            return False
        return self.model_max is None or (cpu.model is not None and cpu.model <= self.model_max)


class _CpuPower(_Record):
    rules: list[CpuPowerRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _last_rule_catches_all(self) -> "_CpuPower":
        # Every CPU must get a figure, so an estimate never silently disappears.
        if not self.rules[-1].unconditional:
            raise ValueError(f"the last rule ({self.rules[-1].name!r}) must have no conditions: it is the fallback")
        return self


class Catalog(_Record):
    """The loaded catalog: accelerator specs, the CPU per-cycle tables and the CPU power rules."""

    sources: dict[str, _Source] = {}
    gpus: list[DeviceSpec]
    cpu_peak: _CpuPeak
    cpu_power: _CpuPower | None = None
    # USD per core-hour, for pools charged by the cores they take
    cpu_price: Annotated[Figure, _figure_from(_Price)] | None = None

    @field_validator("sources")
    @classmethod
    def _lend_to_later_fields(cls, sources: dict[str, _Source], info: ValidationInfo) -> dict[str, _Source]:
        # Fields validate in the order declared, so every record below can cite a source by its key.
        info.context["sources"] = sources
        return sources

    @property
    def cpu_power_rules(self) -> tuple[CpuPowerRule, ...]:
        return tuple(self.cpu_power.rules) if self.cpu_power else ()

    def spec(self, key: str) -> DeviceSpec | None:
        for spec in self.gpus:
            if spec.key == key:
                return spec
        return None


# --- loading -----------------------------------------------------------------------------------


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and validate a catalog file (default: the one shipped with hwfit). Raises CatalogError."""
    if path is None:
        return _default_catalog()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _default_catalog() -> Catalog:
    return _load(DEFAULT_CATALOG_PATH)


def _load(path: Path) -> Catalog:
    raw = _read_yaml(path)
    try:
        catalog = Catalog.model_validate(raw, context={})
    except ValidationError as error:
        raise CatalogError(_describe_validation_error(path, raw, error)) from None
    _check_unique_keys(path, catalog)
    _check_source_refs(path, raw, catalog.sources)
    return catalog


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as error:
        raise CatalogError(f"cannot read spec catalog {path}: {error.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise CatalogError(f"spec catalog {path} is not valid YAML: {error}") from None


def _describe_validation_error(path: Path, raw: Any, error: ValidationError) -> str:
    """One line per problem: 'gpus[h100-sxm].peak_tflops.dense.bf16: Input should be ...'."""
    lines = [f"spec catalog {path} is malformed:"]
    for problem in error.errors():
        location = _location(raw, problem["loc"])
        got = f" (got {problem['input']!r})" if problem["type"] not in ("missing",) and "input" in problem else ""
        lines.append(f"  {location}: {problem['msg']}{got}")
    return "\n".join(lines)


def _location(raw: Any, loc: tuple[Any, ...]) -> str:
    """Render a pydantic error location, naming list items by their `key` or `name` when they have one."""
    text = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            label = item.get("key") or item.get("name") if isinstance(item, dict) else None
            text += f"[{label}]" if label else f"[{part}]"
            node = item
            continue
        text += f".{part}" if text else str(part)
        node = node.get(part) if isinstance(node, dict) else None
    return text


def _check_unique_keys(path: Path, catalog: Catalog) -> None:
    seen: set[str] = set()
    for spec in catalog.gpus:
        if spec.key in seen:
            raise CatalogError(f"spec catalog {path}: gpus[{spec.key}].key: duplicate key {spec.key!r}")
        seen.add(spec.key)


def _check_source_refs(path: Path, raw: dict[str, Any], sources: dict[str, _Source]) -> None:
    """A source that looks like a key (no spaces) must be one, so a typo does not become the citation.

    Checked on the file as read: validation has already replaced every known key by its citation.
    """
    for entry in raw["gpus"]:
        for field_name in ("peak_tflops", "memory_gb", "memory_bandwidth_gb_per_s", "tdp_w", "price"):
            ref = (entry.get(field_name) or {}).get("source")
            if ref is not None and " " not in ref and ref not in sources:
                raise CatalogError(
                    f"spec catalog {path}: gpus[{entry['key']}].{field_name}.source: unknown source key {ref!r} "
                    f"(add it under `sources:` or write the citation in full)"
                )


# --- lookups -----------------------------------------------------------------------------------


def spec_for_gpu(device_name: str, catalog: Catalog | None = None) -> DeviceSpec | None:
    """The catalog entry whose name patterns match an NVML name such as 'NVIDIA H100 80GB HBM3'."""
    catalog = catalog or load_catalog()
    for spec in catalog.gpus:
        if spec.matches(device_name):
            return spec
    return None


def cpu_peak_flops(cpu: CpuInfo, catalog: Catalog | None = None) -> dict[str, Figure]:
    """Computed peak per dtype: cores x clock x FLOP/cycle/core from the catalog's per-cycle table.

    Empty when the core count, clock or a matching rule is unknown; a dtype is absent when the CPU
    has no native instructions for it.
    """
    catalog = catalog or load_catalog()
    rule = next((rule for rule in catalog.cpu_peak.fp32_rules if rule.applies_to(cpu)), None)
    cores, cores_note = _cores_for_peak(cpu)
    clock_mhz, clock_note = _clock_for_peak(cpu)
    if rule is None or cores is None or clock_mhz is None:
        return {}
    base = f"{cores:g} cores ({cores_note}) x {clock_mhz:g} MHz ({clock_note})"
    peaks = {"fp32": _cpu_figure("fp32", cores, clock_mhz, rule.fp32_flop_per_cycle, base, _fp32_why(rule))}
    for dtype in ("bf16", "fp16", "int8"):
        dtype_rule = next((r for r in catalog.cpu_peak.dtype_rules if r.dtype == dtype and r.applies_to(cpu)), None)
        if dtype_rule is None:
            continue
        per_cycle, why = _dtype_per_cycle(dtype_rule, rule)
        peaks[dtype] = _cpu_figure(dtype, cores, clock_mhz, per_cycle, base, why)
    return peaks


def _fp32_why(rule: CpuRule) -> str:
    return (
        f"{rule.name}: {rule.fma_units} FMA units x {rule.fp32_lanes} fp32 lanes x 2; "
        f"assumes {rule.assumption} [{rule.source}]"
    )


def _dtype_per_cycle(dtype_rule: DtypeRule, fp32_rule: CpuRule) -> tuple[float, str]:
    flags = "/".join(dtype_rule.requires_any)
    if dtype_rule.flop_per_cycle is not None:
        return dtype_rule.flop_per_cycle, f"{flags}: {dtype_rule.assumption} [{dtype_rule.source}]"
    per_cycle = dtype_rule.fp32_multiple * fp32_rule.fp32_flop_per_cycle
    why = (
        f"{flags}: {dtype_rule.fp32_multiple:g} x the {fp32_rule.fp32_flop_per_cycle} fp32 FLOP/cycle of "
        f"'{fp32_rule.name}'; {dtype_rule.assumption} [{dtype_rule.source}]"
    )
    return per_cycle, why


def _cpu_figure(dtype: str, cores: float, clock_mhz: float, per_cycle: float, base: str, why: str) -> Figure:
    value = cores * clock_mhz * 1e6 * per_cycle
    unit_word = "OP" if dtype.startswith("int") else "FLOP"
    formula = f"computed: {base} x {per_cycle:g} {unit_word}/cycle/core ({why})"
    return Figure(value, flops_unit(dtype), "computed", formula)


def _cores_for_peak(cpu: CpuInfo) -> tuple[float | None, str]:
    """Physical cores this process can use: all of them, scaled down by an affinity mask or cgroup quota."""
    if cpu.physical_cores is None:
        return None, "unknown"
    cores = float(cpu.physical_cores)
    note = "physical cores"
    if cpu.usable_threads and cpu.logical_threads and cpu.usable_threads < cpu.logical_threads:
        cores = max(1.0, round(cpu.physical_cores * cpu.usable_threads / cpu.logical_threads))
        note = f"physical cores x {cpu.usable_threads}/{cpu.logical_threads} threads in the affinity mask"
    if cpu.cgroup_cpu_limit is not None and cpu.cgroup_cpu_limit < cores:
        cores = cpu.cgroup_cpu_limit
        note = "cgroup cpu.max quota"
    return cores, note


def _clock_for_peak(cpu: CpuInfo) -> tuple[float | None, str]:
    if cpu.max_clock_mhz:
        return cpu.max_clock_mhz, "max clock; all-core sustained clocks are lower"
    if cpu.base_clock_mhz:
        return cpu.base_clock_mhz, "base clock; boost clocks may exceed it"
    return None, "unknown"


# --- CPU power (for energy estimates where no counter exists) ----------------------------------


@dataclass(frozen=True)
class CpuPowerSpec:
    """Per-core package power of one CPU at full load and at idle, each with how it was obtained."""

    rule_name: str
    max_w_per_core: Figure  # W per physical core at full load (TDP / cores of a reference SKU)
    idle_w_per_core: Figure  # W per physical core at idle (idle_share x max)
    idle_share: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_name": self.rule_name,
            "max_w_per_core": self.max_w_per_core.to_dict(),
            "idle_w_per_core": self.idle_w_per_core.to_dict(),
            "idle_share": self.idle_share,
        }


def cpu_power_spec(cpu: CpuInfo, catalog: Catalog | None = None) -> CpuPowerSpec | None:
    """Per-core power figures for `cpu` from the catalog's `cpu_power` rules (first match wins).

    The catalog's last rule catches every CPU, so this is None only for a catalog without a
    `cpu_power` section. Idle power is always `estimated`: it is a share of the full-load figure.
    """
    catalog = catalog or load_catalog()
    rule = next((rule for rule in catalog.cpu_power_rules if rule.applies_to(cpu)), None)
    if rule is None:
        return None
    idle_w = rule.max_w_per_core.value * rule.idle_share
    idle_source = (
        f"{rule.idle_share:g} x {rule.max_w_per_core.value:g} W/core full load (idle share {rule.idle_share_source})"
    )
    return CpuPowerSpec(
        rule_name=rule.name,
        max_w_per_core=rule.max_w_per_core,
        idle_w_per_core=Figure(idle_w, "W/core", "estimated", idle_source),
        idle_share=rule.idle_share,
    )

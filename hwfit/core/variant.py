"""`Variant`: one way to run a model (backend × device × precision × batch size × knobs), its
short key, and the groupings every layer uses: a *family* (how the model runs: backend × device ×
precision × knobs), a *layout* (K replicas × t threads) and a *configuration* (family × layout,
i.e. a variant at any batch size)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from hwfit.core.errors import HwfitError

# tf32: fp32 tensors with TF32 tensor-core math (NVIDIA Ampere+); fp32 on a GPU is IEEE fp32 (TF32 off).
PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8-dynamic", "int8-static")
REPLICAS_KNOB = "replicas"  # K processes of the same variant measured (and served) together


def usable_threads() -> int:
    """Cores this process may run on (its CPU affinity), else the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True, order=True)
class Family:
    """How a model runs, whatever the batch size and layout: backend × device × precision × knobs."""

    backend: str
    device: str
    precision: str
    knobs: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        knobs = "".join(f"/{k}={v}" for k, v in self.knobs)
        return f"{self.backend}/{self.device}/{self.precision}{knobs}"


@dataclass(frozen=True, order=True)
class Layout:
    """K replicas of t threads each, on one unit of a device (t None: the backend's default)."""

    replicas: int = 1
    threads: int | None = None

    def cores(self, device_cores: int | None) -> int | None:
        """Cores this layout occupies on a CPU of `device_cores` cores (None when unknown)."""
        if device_cores is None:
            return None
        return min(device_cores, self.replicas * (self.threads or device_cores))

    @property
    def label(self) -> str:
        threads = f"t{self.threads}" if self.threads else "t*"
        return f"{self.replicas}x{threads}"


@dataclass(frozen=True, order=True)
class Config:
    """What one serving pool runs: a family in one layout, at any batch size."""

    family: Family
    layout: Layout

    @property
    def label(self) -> str:
        """`ort/cpu/fp32 2xt1`: the family and the layout, as plans and reports print them."""
        return f"{self.family.label} {self.layout.label}"

    def variant(self, batch_size: int) -> Variant:
        """This configuration at one batch size (replicas > 1 become the `replicas` knob)."""
        knobs = dict(self.family.knobs)
        if self.layout.replicas > 1:
            knobs[REPLICAS_KNOB] = str(self.layout.replicas)
        return Variant(
            self.family.backend,
            self.family.device,
            self.family.precision,
            int(batch_size),
            self.layout.threads,
            tuple(knobs.items()),
        )


@dataclass(frozen=True, order=True)
class Variant:
    """One way to run a model: backend × device × precision × batch size × knobs.

    `threads` is the intra-op thread count (None: the backend's default, all usable cores).
    `knobs` are backend options as sorted (name, value) pairs, e.g. (("opt_level", "all"),).
    """

    backend: str
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 1
    threads: int | None = None
    knobs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise HwfitError(f"unknown precision '{self.precision}'; expected one of {', '.join(PRECISIONS)}")
        if self.batch_size < 1:
            raise HwfitError(f"batch size must be >= 1, got {self.batch_size}")
        object.__setattr__(self, "knobs", tuple(sorted((str(k), str(v)) for k, v in self.knobs)))

    def knob(self, name: str, default: str | None = None) -> str | None:
        return dict(self.knobs).get(name, default)

    def knob_flag(self, name: str, default: bool) -> bool:
        """A yes/no knob such as `per_channel=false`."""
        return str(self.knob(name, str(default))).lower() in ("1", "true", "yes")

    @property
    def intra_op_threads(self) -> int:
        """The threads a runner uses: the variant's, else every core this process may run on."""
        return self.threads or usable_threads()

    @property
    def replicas(self) -> int:
        return int(self.knob(REPLICAS_KNOB, "1"))

    @property
    def family(self) -> Family:
        knobs = tuple((k, v) for k, v in self.knobs if k != REPLICAS_KNOB)
        return Family(self.backend, self.device, self.precision, knobs)

    @property
    def layout(self) -> Layout:
        return Layout(self.replicas, self.threads)

    @property
    def config(self) -> Config:
        return Config(self.family, self.layout)

    def with_batch(self, batch_size: int) -> Variant:
        return replace(self, batch_size=int(batch_size))

    def without_replicas(self) -> Variant:
        """One replica of this variant: what each process of a K-replica pool loads."""
        return replace(self, knobs=tuple((k, v) for k, v in self.knobs if k != REPLICAS_KNOB))

    @property
    def key(self) -> str:
        """Short printable key, e.g. `ort/cpu/int8-dynamic/b8/t2/per_channel=false`."""
        return "/".join(self._key_parts(with_batch=True))

    @property
    def curve_key(self) -> str:
        """The key without its batch size (`ort/cpu/fp32/t2`): the points of one batch curve share it."""
        return "/".join(self._key_parts(with_batch=False))

    def _key_parts(self, with_batch: bool) -> list[str]:
        parts = [self.backend, self.device, self.precision]
        if with_batch:
            parts.append(f"b{self.batch_size}")
        if self.threads is not None:
            parts.append(f"t{self.threads}")
        return parts + [f"{k}={v}" for k, v in self.knobs]

    @classmethod
    def parse(cls, key: str) -> Variant:
        """Inverse of `key`."""
        parts = key.split("/")
        if len(parts) < 4 or not parts[3].startswith("b") or not parts[3][1:].isdigit():
            raise HwfitError(f"variant key '{key}' is malformed; expected BACKEND/DEVICE/PRECISION/bN[/tN][/k=v...]")
        threads = None
        knobs = []
        for part in parts[4:]:
            if "=" in part:
                knobs.append(tuple(part.split("=", 1)))
            elif part.startswith("t") and part[1:].isdigit():
                threads = int(part[1:])
            else:
                raise HwfitError(f"variant key '{key}': cannot read '{part}' (expected tN or name=value)")
        return cls(parts[0], parts[1], parts[2], int(parts[3][1:]), threads, tuple(knobs))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Variant:
        """Inverse of `to_dict` (the stored form); `key`, if present, is ignored and recomputed."""
        missing = [name for name in ("backend", "device", "precision", "batch_size") if name not in data]
        if missing:
            raise HwfitError(f"variant {dict(data)!r} lacks {', '.join(missing)}")
        knobs = data.get("knobs") or {}
        pairs = knobs.items() if isinstance(knobs, Mapping) else knobs
        threads = data.get("threads")
        return cls(
            str(data["backend"]),
            str(data["device"]),
            str(data["precision"]),
            int(data["batch_size"]),
            None if threads is None else int(threads),
            tuple(tuple(pair) for pair in pairs),
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["knobs"] = dict(self.knobs)
        data["key"] = self.key
        return data


def curve_key_of(variant_key: str) -> str:
    """`curve_key` of a stored key; a key that does not parse is returned as it is."""
    try:
        return Variant.parse(variant_key).curve_key
    except HwfitError:
        return variant_key

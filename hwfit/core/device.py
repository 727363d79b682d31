"""`Device`: one thing that executes (`cpu`, `cuda:N`, `emulated[:NAME]`), parsed once."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hwfit.core.errors import HwfitError

_CUDA = re.compile(r"^cuda(?::(\d+))?$")
_EMULATED = re.compile(r"^emulated(?::([A-Za-z0-9_.-]+))?$")


class UnknownDevice(HwfitError):
    """A device name such as 'cuda:3' or 'tpu' does not name a device hwfit knows."""


@dataclass(frozen=True, order=True)
class Device:
    """A parsed device name. `kind` is 'cpu', 'cuda' or 'emulated'; `index` is the CUDA ordinal
    (after CUDA_VISIBLE_DEVICES) for 'cuda'; `label` names an emulated device."""

    kind: str
    index: int | None = None
    label: str | None = None

    @classmethod
    def parse(cls, name: str) -> Device:
        """'cpu'; 'cuda' and 'cuda:N' (N defaults to 0); 'emulated' and 'emulated:NAME'."""
        text = str(name).strip().lower()
        if text == "cpu":
            return cls("cpu")
        cuda = _CUDA.match(text)
        if cuda:
            return cls("cuda", int(cuda.group(1) or 0))
        emulated = _EMULATED.match(str(name).strip())
        if emulated:
            return cls("emulated", label=emulated.group(1))
        raise UnknownDevice(
            f"unknown device {name!r}: expected 'cpu' or 'cuda:N' (N a CUDA device index), "
            "or 'emulated[:NAME]' (see `hwfit devices`)"
        )

    @classmethod
    def cuda(cls, index: int) -> Device:
        return cls("cuda", int(index))

    @property
    def is_gpu(self) -> bool:
        return self.kind == "cuda"

    @property
    def is_cpu(self) -> bool:
        return self.kind == "cpu"

    def offset(self, units: int) -> list[Device]:
        """This device and the `units - 1` GPUs after it (a pool spread over several GPUs)."""
        if not self.is_gpu:
            return [self] * units
        return [Device.cuda(self.index + step) for step in range(units)]

    @property
    def name(self) -> str:
        if self.kind == "cuda":
            return f"cuda:{self.index}"
        if self.kind == "emulated" and self.label:
            return f"emulated:{self.label}"
        return self.kind

    def __str__(self) -> str:
        return self.name


def is_gpu(name: str) -> bool:
    """Whether a device name names a CUDA GPU ('cuda', 'cuda:N'); False for anything else."""
    return bool(_CUDA.match(str(name).strip().lower()))

"""Device names the telemetry layer accepts ('cpu', 'cuda:N') and its error type."""

import re
from dataclasses import dataclass

from hwfit.errors import HwfitError

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


class TelemetryError(HwfitError):
    """A meter or sampler was misused (unknown device name, end() before begin())."""


@dataclass(frozen=True)
class DeviceName:
    """A parsed device name: kind 'cpu' or 'cuda', and the CUDA index for 'cuda:N'."""

    kind: str
    index: int | None

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"


def parse_device(device: str) -> DeviceName:
    """'cpu' -> cpu; 'cuda' and 'cuda:N' -> CUDA device N (0 when omitted). Raises TelemetryError."""
    text = device.strip().lower()
    if text == "cpu":
        return DeviceName("cpu", None)
    match = _CUDA.match(text)
    if match:
        return DeviceName("cuda", int(match.group(1) or 0))
    raise TelemetryError(f"unknown device {device!r}: expected 'cpu' or 'cuda:N' (N a CUDA device index)")

"""The telemetry layer's error type, and the devices it can read ('cpu', 'cuda:N')."""

from hwfit.core import Device, HwfitError, UnknownDevice


class TelemetryError(HwfitError):
    """A meter or sampler was misused (unknown device name, end() before begin())."""


def telemetry_device(name: str) -> Device:
    """The device a meter or sampler reads: 'cpu', or 'cuda'/'cuda:N'. Raises TelemetryError."""
    try:
        device = Device.parse(name)
    except UnknownDevice:
        device = None
    if device is None or device.kind not in ("cpu", "cuda"):
        raise TelemetryError(f"unknown device {name!r}: telemetry reads 'cpu' or 'cuda:N' (N a CUDA device index)")
    return device

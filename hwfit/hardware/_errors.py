"""Errors the hardware layer raises: each names what was wrong and what was expected."""

from hwfit.errors import HwfitError


class CatalogError(HwfitError):
    """The spec catalog file is missing or malformed; the message names the entry and field."""


class UnknownDevice(HwfitError):
    """A device name such as 'cuda:3' does not name a device on this machine."""


class BenchmarkError(HwfitError):
    """A microbenchmark could not run on the requested device; the message says why."""

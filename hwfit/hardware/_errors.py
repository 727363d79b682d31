"""Errors the hardware layer raises: each names what was wrong and what was expected."""

from hwfit.core import HwfitError, UnknownDevice

__all__ = ["BenchmarkError", "CatalogError", "UnknownDevice"]


class CatalogError(HwfitError):
    """The spec catalog file is missing or malformed; the message names the entry and field."""


class BenchmarkError(HwfitError):
    """A microbenchmark could not run on the requested device; the message says why."""

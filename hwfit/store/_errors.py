"""Errors the store raises: each names the database file and what to do about it."""

from hwfit.core import HwfitError


class StoreError(HwfitError):
    """The results database could not be opened, read or written; the message says which and why."""

"""The check's error: the two sides could not be compared (exit code 2), with what to fix."""

from hwfit.core import HwfitError


class CheckError(HwfitError):
    """A baseline, threshold file or measurement that makes a comparison impossible; the message says why."""

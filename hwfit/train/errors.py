"""The training layer's errors: each says what happened and what to do about it."""

from hwfit.core import HwfitError


class TrainError(HwfitError):
    """A training target or run could not be profiled; the message says why and what to try."""


class FactoryError(TrainError):
    """A `package.module:factory` target could not be imported, raised, or returned the wrong thing."""


class LossNotFinite(TrainError):
    """The loss became NaN or infinite at some step."""


class LoaderError(TrainError):
    """The user's dataset or DataLoader raised while producing a batch."""


class OutOfMemory(TrainError):
    """A step ran out of device memory (advise records it as a result, not a crash)."""

"""Error types shared by every layer: each names what was wrong and what was expected."""


class HwfitError(Exception):
    """Base of every error hwfit raises on purpose; its message is meant for the user."""


class ModelSourceError(HwfitError):
    """A model could not be found, read or built (missing file, malformed ONNX, factory raised)."""


class InputSpecError(HwfitError):
    """Inputs do not match the model's spec (name, dtype, shape), or a shape override is malformed."""


class VariantUnavailable(HwfitError):
    """This machine or its installed packages cannot run a variant; the message says why."""


class BackendError(HwfitError):
    """A backend failed while loading or running a variant."""

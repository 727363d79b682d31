"""Built-in models, all offline: `minilm` (sentence encoder), `cnn` (digits classifier), `resnet50`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hwfit.core import ModelSourceError
from hwfit.models.model import Model


@dataclass(frozen=True)
class Builtin:
    name: str
    summary: str
    load: Callable[[], Model]
    unavailable_reason: Callable[[], str | None]  # None when it can load here


def _minilm() -> Model:
    from hwfit.models.builtins.minilm import load_minilm

    return load_minilm()


def _cnn() -> Model:
    from hwfit.models.builtins.cnn import load_cnn

    return load_cnn()


def _resnet50() -> Model:
    from hwfit.models.builtins.resnet50 import load_resnet50

    return load_resnet50()


def _minilm_reason() -> str | None:
    from hwfit.models.builtins.minilm import minilm_unavailable_reason

    return minilm_unavailable_reason()


def _cnn_reason() -> str | None:
    from hwfit.models.builtins.cnn import cnn_unavailable_reason

    return cnn_unavailable_reason()


def _resnet50_reason() -> str | None:
    from hwfit.models.builtins.resnet50 import resnet50_unavailable_reason

    return resnet50_unavailable_reason()


BUILTINS: dict[str, Builtin] = {
    "minilm": Builtin(
        "minilm", "all-MiniLM-L6-v2 sentence encoder (22.7M params, 384-d embeddings)", _minilm, _minilm_reason
    ),
    "cnn": Builtin("cnn", "small CNN trained on scikit-learn's digits (8x8 images, 10 classes)", _cnn, _cnn_reason),
    "resnet50": Builtin(
        "resnet50",
        "ResNet-50 (torchvision's architecture in plain torch, 25.6M params), seeded random weights (224x224 images)",
        _resnet50,
        _resnet50_reason,
    ),
}

DEFAULT_MODEL = "minilm"


def load_builtin(name: str) -> Model:
    builtin = BUILTINS[name]
    reason = builtin.unavailable_reason()
    if reason:
        raise ModelSourceError(f"built-in '{name}' is unavailable here: {reason}")
    return builtin.load()


def builtin_status() -> list[tuple[str, str, str | None]]:
    """(name, summary, reason it is unavailable or None) for every built-in."""
    return [(b.name, b.summary, b.unavailable_reason()) for b in BUILTINS.values()]

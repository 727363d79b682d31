"""ResNet-50 with seeded random weights: compute-heavy vision profiling where torchvision imports."""

from __future__ import annotations

from hwfit.models.model import Model, hash_module
from hwfit.models.spec import BATCH, InputSpec, TensorSpec

SEED = 0


def resnet50_unavailable_reason() -> str | None:
    try:
        import torchvision  # noqa: F401
    except ImportError:
        return "torchvision is not installed (the CPU setup leaves it out: PyPI's torchvision does not import beside torch 2.13.0); install 'hwfit[gpu]' on a GPU machine"
    except Exception as error:  # torchvision present but broken against this torch
        return f"torchvision does not import beside this torch: {type(error).__name__}: {error}"
    return None


def _make_resnet50():
    import torch
    import torchvision

    torch.manual_seed(SEED)
    return torchvision.models.resnet50(weights=None).eval()


def load_resnet50() -> Model:
    module = _make_resnet50()
    inputs = InputSpec((TensorSpec("image", "float32", (BATCH, 3, 224, 224), fill="normal"),))
    return Model(
        name="resnet50",
        source="resnet50",
        kind="builtin",
        inputs=inputs,
        output_names=("logits",),
        content_hash=hash_module(module),
        task="classification",
        description="torchvision ResNet-50 (25.6M params), seeded random weights, 224x224",
        module_factory=lambda: module,
    )

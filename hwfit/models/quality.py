"""Judging outputs: agreement with the fp32 reference, and task accuracy on a model's eval set."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from hwfit.models.model import Model

# The least agreement with fp32 a variant must keep to count as accurate, per task.
# On real sentences, mean cosine 0.99 on MiniLM separates per-channel dynamic int8 (0.993)
# from per-tensor (0.966).
TOLERANCES: dict[str, tuple[str, float]] = {
    "embedding": ("cosine_mean", 0.99),
    "classification": ("top1_agreement", 0.98),
    "generic": ("cosine_min", 0.999),
}


@dataclass(frozen=True)
class Agreement:
    """How far a variant's outputs are from the reference outputs on the same inputs."""

    max_abs_error: float
    cosine_mean: float
    cosine_min: float
    top1_agreement: float | None  # classification only

    def to_dict(self) -> dict:
        return asdict(self)


def compare_outputs(model: Model, outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> Agreement:
    """Compare the first output per sample: max |a-b|, cosine similarity, top-1 agreement."""
    name = model.output_names[0]
    got = np.asarray(outputs[name], dtype=np.float64).reshape(len(reference[name]), -1)
    ref = np.asarray(reference[name], dtype=np.float64).reshape(len(reference[name]), -1)
    cosine = np.sum(got * ref, axis=1) / np.maximum(np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1), 1e-30)
    top1 = None
    if model.task == "classification":
        top1 = float(np.mean(np.argmax(got, axis=1) == np.argmax(ref, axis=1)))
    return Agreement(float(np.max(np.abs(got - ref))), float(cosine.mean()), float(cosine.min()), top1)


def within_tolerance(model: Model, agreement: Agreement) -> tuple[bool, str]:
    """Whether a variant keeps the task's tolerance, and a one-line reason either way."""
    metric, least = TOLERANCES.get(model.task, TOLERANCES["generic"])
    value = getattr(agreement, metric)
    verdict = value >= least
    return verdict, f"{metric} {value:.4f} {'>=' if verdict else '<'} {least}"


def default_accuracy_loss(model: Model) -> float | None:
    """hwfit's accuracy tolerance for the model's task, as a loss (1 - the least agreement allowed);
    None where the tolerance is on the worst sample (cosine_min), which a loss bound does not express."""
    metric, least = TOLERANCES.get(model.task, TOLERANCES["generic"])
    return round(1.0 - least, 6) if metric in ("cosine_mean", "top1_agreement") else None


def evaluate_accuracy(
    model: Model, run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], batch_size: int
) -> float | None:
    """Top-1 accuracy on the model's eval set, run in batches of `batch_size` (the last one padded)."""
    dataset = model.eval_set()
    if dataset is None:
        return None
    predictions = []
    total = len(dataset)
    for start in range(0, total, batch_size):
        batch = {name: array[start : start + batch_size] for name, array in dataset.inputs.items()}
        count = next(iter(batch.values())).shape[0]
        if count < batch_size:
            batch = {name: _pad(array, batch_size) for name, array in batch.items()}
        logits = run(batch)[model.output_names[0]]
        predictions.append(np.argmax(logits[:count], axis=1))
    return float(np.mean(np.concatenate(predictions) == dataset.labels))


def _pad(array: np.ndarray, size: int) -> np.ndarray:
    padding = np.zeros((size - array.shape[0],) + array.shape[1:], dtype=array.dtype)
    return np.concatenate([array, padding])

"""A quick pass over variants: load each, check its outputs against the fp32 reference, and time
it for a few short rounds; each checked variant is a `Measurement`, and `check_verdict` says what
the check concluded (ok, inaccurate, unavailable, failed). The full profiler builds on this."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from hwfit.backends import Runner, load_variant
from hwfit.core import HwfitError, Variant
from hwfit.models import Model, compare_outputs, evaluate_accuracy, within_tolerance
from hwfit.profile.isolation import run_isolated
from hwfit.profile.stats import latency_summary
from hwfit.store import LatencyStats, Measurement

REFERENCE_SAMPLES = 16
REFERENCE_SEED = 123
WARMUP_RUNS = 2

HOW = (
    "measured: best throughput of the timing rounds, median latency of all timed runs, "
    "after warm-up; load, conversion and compile times apart"
)


def check_verdict(measurement: Measurement) -> str:
    """The quick check's verdict on one variant, one of CHECK_STATUSES: unavailable = skipped
    (with its reason), failed = failed, inaccurate = measured but outside the model's accuracy
    tolerance, ok otherwise."""
    if measurement.status == "skipped":
        return "unavailable"
    if measurement.status == "failed":
        return "failed"
    if measurement.details.get("within_tolerance") is False:
        return "inaccurate"
    return "ok"


def check_reason(measurement: Measurement) -> str | None:
    """Why the verdict is not ok: the measurement's reason, or for an inaccurate variant the
    accuracy verdict (e.g. "cosine_min 0.1000 < 0.99")."""
    if check_verdict(measurement) == "inaccurate":
        return measurement.details.get("accuracy_verdict")
    return measurement.reason


def check_dict(measurement: Measurement) -> dict:
    """One checked variant for `hwfit variants --json`: the Measurement's fields, except that
    `status` is the check's verdict and `reason` its reason (the Measurement's own status is
    `point_status`), plus the keys this output had before it was a Measurement."""
    data = measurement.to_dict()
    latency = measurement.latency
    data.update(
        {
            "status": check_verdict(measurement),
            "point_status": measurement.status,
            "reason": check_reason(measurement),
            "latency_ms_p50": latency.p50_ms if latency else None,
            "runs": latency.count if latency else 0,
            "agreement": _agreement_dict(measurement),
            "accuracy_verdict": measurement.details.get("accuracy_verdict"),
            "notes": measurement.details.get("notes", []),
            "how": HOW,
        }
    )
    return data


def _agreement_dict(measurement: Measurement) -> dict | None:
    if measurement.cosine_mean is None:
        return None
    return {
        "max_abs_error": measurement.max_abs_error,
        "cosine_mean": measurement.cosine_mean,
        "cosine_min": measurement.cosine_min,
        "top1_agreement": measurement.top1_agreement,
    }


def run_in_batches(runner: Runner, inputs: Mapping[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Run N samples through a runner in batches of `batch_size`, padding the last batch."""
    total = next(iter(inputs.values())).shape[0]
    pieces: dict[str, list[np.ndarray]] = {}
    for start in range(0, total, batch_size):
        batch = {name: array[start : start + batch_size] for name, array in inputs.items()}
        count = next(iter(batch.values())).shape[0]
        if count < batch_size:
            batch = {
                name: np.concatenate([array, np.repeat(array[-1:], batch_size - count, axis=0)])
                for name, array in batch.items()
            }
        for name, array in runner.run(batch).items():
            pieces.setdefault(name, []).append(array[:count])
    return {name: np.concatenate(arrays) for name, arrays in pieces.items()}


def reference_outputs(model: Model, inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    """fp32 outputs to judge every variant against: PyTorch eager if the model has a module, else ORT."""
    backend = "torch" if model.has_torch else "ort"
    with load_variant(model, Variant(backend, "cpu", "fp32", REFERENCE_SAMPLES)) as runner:
        return run_in_batches(runner, inputs, REFERENCE_SAMPLES), f"{backend}/cpu/fp32"


def time_runner(
    runner: Runner, inputs: Mapping[str, np.ndarray], seconds: float, rounds: int
) -> tuple[float, list[float]]:
    """(best samples/s over rounds, every timed run's latency in seconds) after warm-up."""
    for _ in range(WARMUP_RUNS):
        runner.run_unchecked(inputs)
    batch = runner.variant.batch_size
    latencies: list[float] = []
    best = 0.0
    for _ in range(rounds):
        round_started = time.perf_counter()
        count = 0
        while True:
            started = time.perf_counter()
            runner.run_unchecked(inputs)
            latencies.append(time.perf_counter() - started)
            count += 1
            if time.perf_counter() - round_started >= seconds / rounds:
                break
        best = max(best, count * batch / (time.perf_counter() - round_started))
    return best, latencies


def _measurement(
    variant: Variant, status: str, reason: str | None = None, notes: list[str] | None = None
) -> Measurement:
    return Measurement(variant.key, variant.to_dict(), status, reason, details={"notes": list(notes or [])})


def check_variant(
    model: Model,
    variant: Variant,
    reference: Mapping[str, np.ndarray],
    reference_inputs: Mapping[str, np.ndarray],
    seconds: float,
    rounds: int,
) -> Measurement:
    try:
        runner = load_variant(model, variant)
    except HwfitError as error:
        return _measurement(variant, "failed", str(error))
    except Exception as error:  # a backend bug or a crash in native code surfaced as an exception
        return _measurement(variant, "failed", f"{type(error).__name__}: {error}", [traceback.format_exc(limit=3)])
    with runner:
        measurement = _measurement(variant, "ok", notes=runner.stats.notes)
        measurement.convert_s = runner.stats.convert_s
        measurement.load_s = runner.stats.load_s
        measurement.compile_s = runner.stats.compile_s
        try:
            _check_accuracy(model, runner, variant, reference, reference_inputs, measurement)
            timing_inputs = model.synthetic_inputs(variant.batch_size)
            measurement.samples_per_s, latencies = time_runner(runner, timing_inputs, seconds, rounds)
            measurement.latency = LatencyStats(**latency_summary(latencies))
        except Exception as error:
            return _measurement(variant, "failed", f"{type(error).__name__}: {error}", measurement.details["notes"])
    return measurement


def _check_accuracy(
    model: Model,
    runner: Runner,
    variant: Variant,
    reference: Mapping[str, np.ndarray],
    reference_inputs: Mapping[str, np.ndarray],
    measurement: Measurement,
) -> None:
    """Agreement with the fp32 reference, whether it keeps the model's tolerance, and task accuracy."""
    outputs = run_in_batches(runner, reference_inputs, variant.batch_size)
    agreement = compare_outputs(model, outputs, reference)
    measurement.max_abs_error = agreement.max_abs_error
    measurement.cosine_mean = agreement.cosine_mean
    measurement.cosine_min = agreement.cosine_min
    measurement.top1_agreement = agreement.top1_agreement
    accurate, verdict = within_tolerance(model, agreement)
    measurement.details.update({"within_tolerance": accurate, "accuracy_verdict": verdict})
    measurement.task_accuracy = evaluate_accuracy(model, runner.run, variant.batch_size)


def quick_check(
    model: Model,
    candidates: Iterable[tuple[Variant, str | None]],
    seconds: float = 1.5,
    rounds: int = 3,
    on_start: Callable[[Variant], None] | None = None,
    timeout_s: float = 600.0,
) -> list[Measurement]:
    """Check every candidate, each in its own process (see `isolation`); unavailable ones are
    kept as skipped with their reason, never dropped. `check_verdict` gives each one's verdict."""
    reference_inputs, _ = model.sample_inputs(REFERENCE_SAMPLES, seed=REFERENCE_SEED)
    outcome = run_isolated(_reference_job, (model.source, model.inputs, reference_inputs), timeout_s)
    if not outcome.ok:
        raise HwfitError(f"the fp32 reference run of {model.name} failed: {outcome.reason}")
    reference = outcome.value
    measurements = []
    for variant, reason in candidates:
        if reason:
            measurements.append(_measurement(variant, "skipped", reason))
            continue
        if on_start:
            on_start(variant)
        job_args = (model.source, model.inputs, variant, reference, reference_inputs, seconds, rounds)
        outcome = run_isolated(_variant_job, job_args, timeout_s)
        measurements.append(outcome.value if outcome.ok else _measurement(variant, "failed", outcome.reason))
    return measurements


def reload_model(source: str, inputs) -> Model:
    """The model again in a child process, from what the user named, with the parent's input spec."""
    from dataclasses import replace

    from hwfit.models import load_model

    return replace(load_model(source), inputs=inputs)


def _reference_job(source: str, inputs, reference_inputs, report=None):
    return reference_outputs(reload_model(source, inputs), reference_inputs)[0]


def _variant_job(source, inputs, variant, reference, reference_inputs, seconds, rounds, report=None):
    model = reload_model(source, inputs)
    return check_variant(model, variant, reference, reference_inputs, seconds, rounds)

"""A quick pass over variants: load each, check its outputs against the fp32 reference, and time
it for a few short rounds. The full profiler (statistics, isolation, store) builds on this."""

from __future__ import annotations

import statistics
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np

from hwfit.core import Variant

from hwfit.backends import Runner, load_variant
from hwfit.core import HwfitError
from hwfit.models import Agreement, Model, compare_outputs, evaluate_accuracy, within_tolerance
from hwfit.profile.isolation import run_isolated

REFERENCE_SAMPLES = 16
REFERENCE_SEED = 123
WARMUP_RUNS = 2


@dataclass
class QuickResult:
    """One variant's quick check. `status`: ok, inaccurate, unavailable or failed (with `reason`)."""

    variant: Variant
    status: str
    reason: str | None = None
    samples_per_s: float | None = None  # best of the rounds
    latency_ms_p50: float | None = None  # median over every timed run
    runs: int = 0
    convert_s: float | None = None
    load_s: float | None = None
    compile_s: float | None = None
    agreement: Agreement | None = None
    accuracy_verdict: str | None = None
    task_accuracy: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "variant": self.variant.to_dict(),
            "status": self.status,
            "reason": self.reason,
            "samples_per_s": self.samples_per_s,
            "latency_ms_p50": self.latency_ms_p50,
            "runs": self.runs,
            "convert_s": self.convert_s,
            "load_s": self.load_s,
            "compile_s": self.compile_s,
            "agreement": self.agreement.to_dict() if self.agreement else None,
            "accuracy_verdict": self.accuracy_verdict,
            "task_accuracy": self.task_accuracy,
            "notes": self.notes,
            "how": "measured: best throughput of the timing rounds, median latency of all timed runs, "
                   "after warm-up; load, conversion and compile times apart",
        }


def run_in_batches(runner: Runner, inputs: Mapping[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Run N samples through a runner in batches of `batch_size`, padding the last batch."""
    total = next(iter(inputs.values())).shape[0]
    pieces: dict[str, list[np.ndarray]] = {}
    for start in range(0, total, batch_size):
        batch = {name: array[start:start + batch_size] for name, array in inputs.items()}
        count = next(iter(batch.values())).shape[0]
        if count < batch_size:
            batch = {name: np.concatenate([array, np.repeat(array[-1:], batch_size - count, axis=0)])
                     for name, array in batch.items()}
        for name, array in runner.run(batch).items():
            pieces.setdefault(name, []).append(array[:count])
    return {name: np.concatenate(arrays) for name, arrays in pieces.items()}


def reference_outputs(model: Model, inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    """fp32 outputs to judge every variant against: PyTorch eager if the model has a module, else ORT."""
    backend = "torch" if model.has_torch else "ort"
    with load_variant(model, Variant(backend, "cpu", "fp32", REFERENCE_SAMPLES)) as runner:
        return run_in_batches(runner, inputs, REFERENCE_SAMPLES), f"{backend}/cpu/fp32"


def time_runner(runner: Runner, inputs: Mapping[str, np.ndarray], seconds: float, rounds: int) -> tuple[float, float, int]:
    """(best samples/s over rounds, median latency ms, timed runs) after warm-up."""
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
    return best, statistics.median(latencies) * 1000.0, len(latencies)


def check_variant(model: Model, variant: Variant, reference: Mapping[str, np.ndarray],
                  reference_inputs: Mapping[str, np.ndarray], seconds: float, rounds: int) -> QuickResult:
    try:
        runner = load_variant(model, variant)
    except HwfitError as error:
        return QuickResult(variant, "failed", str(error))
    except Exception as error:  # a backend bug or a crash in native code surfaced as an exception
        return QuickResult(variant, "failed", f"{type(error).__name__}: {error}",
                           notes=[traceback.format_exc(limit=3)])
    with runner:
        result = QuickResult(variant, "ok", convert_s=runner.stats.convert_s, load_s=runner.stats.load_s,
                             compile_s=runner.stats.compile_s, notes=list(runner.stats.notes))
        try:
            outputs = run_in_batches(runner, reference_inputs, variant.batch_size)
            result.agreement = compare_outputs(model, outputs, reference)
            accurate, result.accuracy_verdict = within_tolerance(model, result.agreement)
            result.task_accuracy = evaluate_accuracy(model, runner.run, variant.batch_size)
            timing_inputs = model.synthetic_inputs(variant.batch_size)
            result.samples_per_s, result.latency_ms_p50, result.runs = time_runner(runner, timing_inputs, seconds, rounds)
        except Exception as error:
            return QuickResult(variant, "failed", f"{type(error).__name__}: {error}", notes=result.notes)
        if not accurate:
            result.status, result.reason = "inaccurate", result.accuracy_verdict
    return result


def quick_check(
    model: Model,
    candidates: Iterable[tuple[Variant, str | None]],
    seconds: float = 1.5,
    rounds: int = 3,
    on_start: Callable[[Variant], None] | None = None,
    timeout_s: float = 600.0,
) -> list[QuickResult]:
    """Check every candidate, each in its own process (see `isolation`); unavailable ones are
    kept with their reason, never dropped."""
    reference_inputs, _ = model.sample_inputs(REFERENCE_SAMPLES, seed=REFERENCE_SEED)
    outcome = run_isolated(_reference_job, (model.source, model.inputs, reference_inputs), timeout_s)
    if not outcome.ok:
        raise HwfitError(f"the fp32 reference run of {model.name} failed: {outcome.reason}")
    reference = outcome.value
    results = []
    for variant, reason in candidates:
        if reason:
            results.append(QuickResult(variant, "unavailable", reason))
            continue
        if on_start:
            on_start(variant)
        job_args = (model.source, model.inputs, variant, reference, reference_inputs, seconds, rounds)
        outcome = run_isolated(_variant_job, job_args, timeout_s)
        results.append(outcome.value if outcome.ok else QuickResult(variant, "failed", outcome.reason))
    return results


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

"""Training results in the store: a run per `train profile` / `train advise`, its experiments in the
`train_experiments` table (store migration 4), read back by `hwfit results` and `hwfit report`."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from typing import Any

import hwfit
from hwfit.hardware import discover_cpu, discover_gpus
from hwfit.store import Environment, ResultsStore, hostname_hash
from hwfit.train.advise import Advice, ExperimentResult

PROFILE_KEY = "train-profile"
ADVISE_KEY = "train-advise"


def save_profile(store: ResultsStore, target: str, result: dict[str, Any], args: dict[str, Any]) -> int:
    """Record one `train profile` as a run with a single baseline row; returns the run id."""
    run_id = _start(store, target, result.get("target", target), PROFILE_KEY, args)
    breakdown = result["breakdown"]
    row = {
        "name": "baseline",
        "kind": "baseline",
        "status": "baseline",
        "reason": breakdown["diagnosis"],
        "changes": result.get("changes", {}),
        "step_ms": breakdown["step_ms"],
        "samples_per_s": breakdown["samples_per_s"],
        "speedup": 1.0,
        "peak_memory_bytes": result.get("peak_memory_bytes"),
        "details": result,
    }
    store.record_train_experiments(run_id, [row])
    store.finish_run(run_id, "complete")
    return run_id


def save_advice(store: ResultsStore, target: str, advice: Advice, args: dict[str, Any]) -> int:
    """Record a `train advise`: the baseline, every experiment (kept, rejected, failed, skipped) and
    the combination; returns the run id."""
    run_id = _start(store, target, advice.target, ADVISE_KEY, args)
    baseline = advice.baseline
    rows = [
        {
            "name": "baseline",
            "kind": "baseline",
            "status": "baseline",
            "reason": baseline["breakdown"]["diagnosis"],
            "step_ms": baseline["breakdown"]["step_ms"],
            "samples_per_s": baseline["breakdown"]["samples_per_s"],
            "speedup": 1.0,
            "peak_memory_bytes": baseline.get("peak_memory_bytes"),
            "details": {**baseline, "rule": advice.rule, "noise": advice.noise, "threshold": advice.threshold},
        }
    ]
    rows += [_row(result) for result in advice.results]
    if advice.combination is not None:
        rows.append({**_row(advice.combination), "kind": "combination"})
    store.record_train_experiments(run_id, rows)
    store.finish_run(run_id, "complete")
    return run_id


def _row(result: ExperimentResult) -> dict[str, Any]:
    loss_ok = result.loss_check["ok"] if result.loss_check else None
    return {
        "name": result.name,
        "kind": result.kind,
        "status": result.status,
        "reason": result.reason,
        "changes": result.changes,
        "code": result.code,
        "step_ms": result.step_ms,
        "samples_per_s": result.samples_per_s,
        "speedup": result.speedup,
        "loss_ok": loss_ok,
        "peak_memory_bytes": result.peak_memory_bytes,
        "details": {**result.details, "loss_check": result.loss_check},
    }


def _start(store: ResultsStore, target: str, name: str, key: str, args: dict[str, Any]) -> int:
    digest = hashlib.sha256(f"{key}:{target}".encode()).hexdigest()[:16]
    run = store.start_run(name, target, digest, key, args, training_environment())
    return run.id


def training_environment() -> Environment:
    """The software and hardware a training run measured on (the fields the store keeps)."""
    cpu = _safe(discover_cpu)
    gpus = (_safe(discover_gpus) or ([], None))[0]
    return Environment(
        hwfit_version=hwfit.__version__,
        hwfit_commit=None,
        python=platform.python_version(),
        numpy=_version("numpy"),
        onnxruntime=_version("onnxruntime"),
        torch=_version("torch"),
        openvino=_version("openvino"),
        cuda=None,
        nvidia_driver=gpus[0].driver_version if gpus else None,
        cpu_model=cpu.model_name if cpu else None,
        gpu_names=tuple(gpu.name for gpu in gpus),
        hostname_hash=hostname_hash(),
        extra={"cpu_count": cpu.logical_threads if cpu else None, "usable_cores": cpu.usable_threads if cpu else None},
    )


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _safe(probe: Any) -> Any:
    try:
        return probe()
    except Exception:  # the environment is best effort: a probe that fails leaves its field empty
        return None

"""`hwfit train advise`: try each change in its own process for a bounded number of steps and keep
it only if it is faster *and* the loss over the same steps (same seeds, same data order) stays
within a stated tolerance of the baseline's; then measure the kept changes together.

The baseline runs first and again last: the difference between its two runs is this machine's
noise, and a change must beat it (and at least `min_gain`) to count as faster.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hwfit.core import Device
from hwfit.train.isolation import Outcome, run_in_process
from hwfit.train.loop import NO_CHANGES, Changes
from hwfit.train.workload import load_workload

# The loss-parity rule: over the same steps, |mean(candidate) - mean(baseline)| must be within
# RTOL x |mean(baseline)| + ATOL, both over all steps and over the last quarter of them.
LOSS_RTOL = 0.03
LOSS_ATOL = 0.01
MIN_GAIN = 0.03  # a change must be at least 3% faster (and beyond the measured noise) to be kept

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LossCheck:
    """Whether a candidate's losses track the baseline's over the same steps."""

    ok: bool
    baseline_mean: float | None
    candidate_mean: float | None
    difference: float | None
    tolerance: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def loss_parity(
    baseline: list[float], candidate: list[float], rtol: float = LOSS_RTOL, atol: float = LOSS_ATOL
) -> LossCheck:
    """The loss-parity rule over the same steps: the means over all steps and over the last quarter
    must each differ by at most `rtol * |baseline mean| + atol`; a non-finite loss fails."""
    if len(baseline) != len(candidate) or not baseline:
        return LossCheck(False, None, None, None, None, f"not the same steps ({len(baseline)} vs {len(candidate)})")
    if not all(math.isfinite(x) for x in candidate):
        return LossCheck(False, None, None, None, None, "the loss became NaN or infinite")
    tail = max(1, len(baseline) // 4)
    worst: tuple[float, float, float, float, str] | None = None
    windows = (("all steps", baseline, candidate), ("last quarter", baseline[-tail:], candidate[-tail:]))
    for label, base, cand in windows:
        base_mean, cand_mean = sum(base) / len(base), sum(cand) / len(cand)
        tolerance = rtol * abs(base_mean) + atol
        difference = abs(cand_mean - base_mean)
        if worst is None or difference - tolerance > worst[2] - worst[3]:
            worst = (base_mean, cand_mean, difference, tolerance, label)
    base_mean, cand_mean, difference, tolerance, label = worst
    ok = difference <= tolerance
    verdict = "within" if ok else "outside"
    reason = f"loss {cand_mean:.4f} vs {base_mean:.4f} over {label}: {verdict} ±{tolerance:.4f}"
    return LossCheck(ok, base_mean, cand_mean, difference, tolerance, reason)


@dataclass(frozen=True)
class Experiment:
    """One change to try, the lines of code it means, and whether it combines with others."""

    name: str
    changes: Changes
    code: str
    kind: str = "speed"  # "speed" (same samples per step: loss checked) | "batch" | "ddp"
    combinable: bool = True
    world_size: int = 1


@dataclass
class ExperimentResult:
    name: str
    kind: str
    changes: dict[str, Any]
    code: str
    status: str  # "kept" | "rejected" | "failed" | "skipped" | "baseline" | "combined"
    reason: str
    step_ms: float | None = None
    samples_per_s: float | None = None
    speedup: float | None = None
    loss_check: dict[str, Any] | None = None
    peak_memory_bytes: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Advice:
    target: str
    device: str
    steps: int
    warmup: int
    baseline: dict[str, Any]
    noise: float
    threshold: float
    results: list[ExperimentResult]
    combination: ExperimentResult | None
    rule: str

    def ranked(self) -> list[ExperimentResult]:
        """Kept changes, fastest first."""
        kept = [r for r in self.results if r.status == "kept"]
        return sorted(kept, key=lambda r: -(r.speedup or 0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "device": self.device,
            "steps": self.steps,
            "warmup": self.warmup,
            "baseline": self.baseline,
            "noise": self.noise,
            "threshold": self.threshold,
            "rule": self.rule,
            "results": [r.to_dict() for r in self.results],
            "ranked": [r.name for r in self.ranked()],
            "combination": self.combination.to_dict() if self.combination else None,
        }


# --- the experiments ------------------------------------------------------------------------


def plan_experiments(baseline: dict[str, Any], device: Device, traits: dict[str, Any]) -> list[Experiment | str]:
    """The experiments worth running for this workload on this device; a string is a skip with its reason."""
    gpu = device.is_gpu
    where = "cuda" if gpu else "cpu"
    batch = baseline["batch_size"]
    planned: list[Experiment | str] = []
    breakdown = baseline["breakdown"]
    workers = min(4, os.cpu_count() or 1)
    if breakdown["data_bound"]:
        planned.append(
            Experiment(
                "data loader workers",
                Changes(num_workers=workers, persistent_workers=True, prefetch_factor=4, pin_memory=gpu),
                f"DataLoader(dataset, batch_size={batch}, num_workers={workers}, persistent_workers=True, "
                f"prefetch_factor=4{', pin_memory=True' if gpu else ''})"
                + ("  # and .to(device, non_blocking=True)" if gpu else ""),
            )
        )
    else:
        planned.append(f"data loader workers: skipped, not data-bound (data wait {breakdown['shares']['data']:.0%})")
    planned.append(
        Experiment(
            "bf16 autocast",
            Changes(amp="bf16"),
            f'with torch.autocast("{where}", dtype=torch.bfloat16):\n    loss = loss_fn(model(inputs), targets)',
        )
    )
    if gpu:
        planned.append(
            Experiment(
                "fp16 autocast + GradScaler",
                Changes(amp="fp16", grad_scaler=True),
                'scaler = torch.amp.GradScaler("cuda")\nwith torch.autocast("cuda", dtype=torch.float16):\n'
                "    loss = loss_fn(model(inputs), targets)\nscaler.scale(loss).backward()\n"
                "scaler.step(optimizer)\nscaler.update()",
                combinable=False,  # one autocast precision at a time: bf16 is combined where both pass
            )
        )
    else:
        planned.append("fp16 autocast + GradScaler: skipped, for CUDA devices only")
    if traits["conv"]:
        planned.append(
            Experiment(
                "channels-last",
                Changes(channels_last=True),
                "model = model.to(memory_format=torch.channels_last)\n"
                "inputs = inputs.contiguous(memory_format=torch.channels_last)",
            )
        )
    else:
        planned.append("channels-last: skipped, the model has no convolutions")
    planned.append(Experiment("torch.compile", Changes(compile=True), "model = torch.compile(model)"))
    if traits["blocks"]:
        planned.append(
            Experiment(
                "activation checkpointing",
                Changes(checkpointing=True),
                "from torch.utils.checkpoint import checkpoint\n\n"
                "x = checkpoint(block, x, use_reentrant=False)  # for each block, in forward",
                combinable=False,  # it trades time for memory: never part of the fastest set
            )
        )
    else:
        planned.append("activation checkpointing: skipped, no nn.ModuleList of blocks in the model")
    if traits["optimizer"] in ("Adam", "AdamW", "SGD", "Adagrad"):
        planned.append(
            Experiment(
                "fused optimizer",
                Changes(fused_optimizer=True),
                f"optimizer = torch.optim.{traits['optimizer']}(model.parameters(), ..., fused=True)",
            )
        )
    else:
        planned.append(f"fused optimizer: skipped, torch has no fused {traits['optimizer']}")
    # On a GPU the batch doubles up to the memory limit (the first out-of-memory ends the series);
    # on a CPU, host memory is rarely the limit and x2, x4 show the trend.
    for factor in (2, 4, 8, 16, 32) if gpu else (2, 4):
        planned.append(
            Experiment(
                f"batch size x{factor}",
                Changes(batch_size=batch * factor),
                f"DataLoader(dataset, batch_size={batch * factor}, ...)  # scaling the learning rate is your call",
                kind="batch",
                combinable=False,
            )
        )
    if gpu and traits.get("cuda_devices", 0) < 2:
        planned.append(f"DDP: skipped, one process per GPU needs 2 GPUs; {traits.get('cuda_devices', 0)} here")
        return planned
    planned.append(
        Experiment(
            "DDP, 2 processes" + (" (NCCL)" if gpu else " (gloo)"),
            NO_CHANGES,
            "torch.distributed.init_process_group(" + ('"nccl"' if gpu else '"gloo"') + ")\n"
            "model = DistributedDataParallel(model)\n"
            "DataLoader(dataset, sampler=DistributedSampler(dataset), ...)  # launch with torchrun --nproc-per-node 2",
            kind="ddp",
            combinable=False,
            world_size=2,
        )
    )
    return planned


def workload_traits(target: str) -> dict[str, Any]:
    """What decides which experiments apply: convolutions, blocks to checkpoint, the optimizer."""
    import torch

    workload = load_workload(target)
    return {
        "conv": workload.is_conv,
        "blocks": any(isinstance(m, torch.nn.ModuleList) and len(m) > 0 for m in workload.model.modules()),
        "optimizer": type(workload.optimizer).__name__,
        "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "description": workload.description,
        "name": workload.name,
    }


def measure_job(target: str, changes: dict, steps: int, warmup: int, device: str, threads: int | None) -> dict:
    """The child's job: run the steps and return the result as plain data."""
    import torch

    from hwfit.train.loop import run_training

    if threads:
        torch.set_num_threads(threads)
    return run_training(target, Changes.from_dict(changes), steps, warmup, device, measure_energy=False).to_dict()


def ddp_job(target: str, steps: int, warmup: int, device: str, world: int) -> dict:
    """Run `world` ranks of data-parallel training (gloo on CPU, NCCL on GPUs); rank 0's result."""
    import torch.multiprocessing as tmp

    from hwfit.train.distributed import free_port, run_ranks

    queue = tmp.get_context("spawn").SimpleQueue()
    arguments = (world, target, steps, warmup, device, free_port(), queue)
    tmp.start_processes(run_ranks, args=arguments, nprocs=world, join=True, start_method="spawn")
    if queue.empty():
        raise RuntimeError("no rank reported a result")
    kind, payload = queue.get()
    if kind != "ok":
        raise RuntimeError(payload)
    return payload


def advise(
    target: str,
    device: str = "cpu",
    steps: int = 20,
    warmup: int = 3,
    timeout_s: float = 300.0,
    only: list[str] | None = None,
    progress: Progress | None = None,
    rtol: float = LOSS_RTOL,
    atol: float = LOSS_ATOL,
    repeats: int = 1,
) -> Advice:
    """Measure the baseline, each applicable change and the kept changes together. With `repeats` > 1
    each configuration runs in that many fresh processes and the fastest (by median warm step) counts:
    on a shared machine, a process that met another job's burst is not the configuration's speed."""
    from hwfit.train.errors import TrainError

    parsed = Device.parse(device)
    say = progress or (lambda message, done, total: None)
    traits_outcome = run_in_process(workload_traits, (target,), timeout_s)
    if not traits_outcome.ok:
        raise TrainError(f"{target}: {traits_outcome.message}")
    traits = traits_outcome.value

    def measure(changes: Changes) -> Outcome:
        return _fastest(
            [
                run_in_process(measure_job, (target, changes.to_dict(), steps, warmup, str(parsed), None), timeout_s)
                for _ in range(max(1, repeats))
            ]
        )

    say("baseline", 0, 1)
    first = measure(NO_CHANGES)
    if not first.ok:
        raise TrainError(f"the baseline of {target} failed ({first.error_type}): {first.message}")
    baseline = first.value
    planned = plan_experiments(baseline, parsed, traits)
    if only:
        planned = [p for p in planned if isinstance(p, Experiment) and any(o.lower() in p.name.lower() for o in only)]
    runs = [p for p in planned if isinstance(p, Experiment)]
    total = len(runs) + 3
    results: list[ExperimentResult] = []
    measured: list[tuple[Experiment, Outcome]] = []
    out_of_memory_at: str | None = None
    for index, experiment in enumerate(runs, start=1):
        say(experiment.name, index, total)
        if experiment.kind == "batch" and out_of_memory_at:
            reason = f"a smaller batch ({out_of_memory_at}) already ran out of memory"
            measured.append((experiment, Outcome(False, error_type="Skipped", message=reason)))
            continue
        if experiment.kind == "ddp":
            ddp_args = (target, steps, warmup, str(parsed), experiment.world_size)
            outcome = _fastest([run_in_process(ddp_job, ddp_args, timeout_s) for _ in range(max(1, repeats))])
        else:
            outcome = measure(experiment.changes)
        measured.append((experiment, outcome))
        if experiment.kind == "batch" and not outcome.ok and outcome.error_type == "OutOfMemory":
            out_of_memory_at = experiment.name
    say("baseline again (noise)", total - 2, total)
    second = measure(NO_CHANGES)
    base_step = _mean_step(baseline, second)
    noise = _noise(baseline, second)
    threshold = max(MIN_GAIN, noise)
    for experiment, outcome in measured:
        results.append(_judge(experiment, outcome, baseline, base_step, threshold, rtol, atol))
    for skip in planned:
        if isinstance(skip, str):
            name, _, reason = skip.partition(": skipped, ")
            results.append(ExperimentResult(name, "speed", {}, "", "skipped", reason))
    combination = None
    together = [r for r in results if r.status == "kept" and _combinable(r, runs)]
    if len(together) >= 2:
        say("kept changes together", total - 1, total)
        merged = NO_CHANGES
        for result in together:
            merged = merged.merged(Changes.from_dict(result.changes))
        experiment = Experiment(
            " + ".join(r.name for r in together), merged, "\n".join(r.code for r in together), kind="speed"
        )
        combination = _judge(experiment, measure(merged), baseline, base_step, threshold, rtol, atol)
        combination.status = "combined" if combination.status == "kept" else combination.status
    say("done", total, total)
    rule = (
        f"speed from each run's median warm step (the fastest of {max(1, repeats)} process(es) per configuration); "
        f"kept if at least {threshold:.1%} faster than the baseline "
        f"(the larger of {MIN_GAIN:.0%} and the baseline's "
        f"run-to-run difference, {noise:.1%}) and the loss over the same {steps} steps (same seeds and data order) "
        f"is within {rtol:.0%} x |baseline| + {atol} of the baseline's, over all steps and over the last quarter"
    )
    return Advice(
        target=traits["name"],
        device=str(parsed),
        steps=steps,
        warmup=warmup,
        baseline={**baseline, "description": traits["description"], "second_step_ms": _step_ms(second)},
        noise=noise,
        threshold=threshold,
        results=results,
        combination=combination,
        rule=rule,
    )


def _fastest(outcomes: list[Outcome]) -> Outcome:
    """The run with the lowest median warm step; the first failure if none succeeded."""
    succeeded = [o for o in outcomes if o.ok]
    if not succeeded:
        return outcomes[0]
    return min(succeeded, key=lambda o: o.value["breakdown"]["median_step_ms"])


def _combinable(result: ExperimentResult, runs: list[Experiment]) -> bool:
    return any(e.name == result.name and e.combinable and e.kind == "speed" for e in runs)


def _step_ms(outcome: Outcome) -> float | None:
    return outcome.value["breakdown"]["median_step_ms"] if outcome.ok else None


def speed(value: dict) -> float:
    """Samples/s of one run from its median warm step (a batch per step: the loader drops the last)."""
    return value["batch_size"] / (value["breakdown"]["median_step_ms"] / 1e3)


def _mean_step(baseline: dict, second: Outcome) -> float:
    steps = [baseline["breakdown"]["median_step_ms"]]
    if second.ok:
        steps.append(second.value["breakdown"]["median_step_ms"])
    return sum(steps) / len(steps)


def _noise(baseline: dict, second: Outcome) -> float:
    if not second.ok:
        return 0.0
    a, b = baseline["breakdown"]["median_step_ms"], second.value["breakdown"]["median_step_ms"]
    return abs(a - b) / ((a + b) / 2)


def _judge(
    experiment: Experiment,
    outcome: Outcome,
    baseline: dict,
    base_step_ms: float,
    threshold: float,
    rtol: float,
    atol: float,
) -> ExperimentResult:
    result = ExperimentResult(
        experiment.name, experiment.kind, experiment.changes.to_dict(), experiment.code, "failed", ""
    )
    if not outcome.ok:
        result.reason = _failure_reason(outcome)
        if outcome.error_type == "Skipped":
            result.status = "skipped"
        return result
    value = outcome.value
    breakdown = value["breakdown"]
    result.step_ms = breakdown["median_step_ms"]
    result.samples_per_s = speed(value)
    result.peak_memory_bytes = value["peak_memory_bytes"]
    result.details = {"breakdown": breakdown, "losses": value["losses"], "batch_size": value["batch_size"]}
    base_rate = baseline["batch_size"] / (base_step_ms / 1e3)
    if experiment.kind == "ddp":
        world = experiment.world_size
        result.samples_per_s = world * speed(value)  # the ranks step together (gradients all-reduced)
        result.speedup = result.samples_per_s / base_rate
        result.details["scaling_efficiency"] = result.speedup / world
        result.details["world_size"] = world
        result.reason = (
            f"{world} processes: {result.speedup:.2f}x the single process's samples/s, scaling efficiency "
            f"{result.speedup / world:.0%}; each process trains on its own batch of {value['batch_size']} "
            "(the global batch grows: the loss is not compared)"
        )
        result.status = "kept" if result.speedup >= 1 + threshold else "rejected"
        return result
    result.speedup = result.samples_per_s / base_rate
    if experiment.kind == "batch":
        result.reason = (
            f"{result.speedup:.2f}x samples/s at batch {value['batch_size']}, peak memory "
            f"{_mib(value['peak_memory_bytes'])}; the loss is not compared (other samples per step) and scaling "
            "the learning rate is your call"
        )
        result.status = "kept" if result.speedup >= 1 + threshold else "rejected"
        return result
    check = loss_parity(baseline["losses"], value["losses"], rtol, atol)
    result.loss_check = check.to_dict()
    faster = result.speedup >= 1 + threshold
    if faster and check.ok:
        result.status, result.reason = "kept", f"{result.speedup:.2f}x faster; {check.reason}"
    elif not check.ok:
        result.status, result.reason = "rejected", f"{result.speedup:.2f}x but the loss moved: {check.reason}"
    else:
        result.status = "rejected"
        result.reason = f"not faster: {result.speedup:.2f}x (needs ≥ {1 + threshold:.2f}x); {check.reason}"
    return result


def _failure_reason(outcome: Outcome) -> str:
    message = (outcome.message or "").strip().splitlines()
    first = message[0] if message else ""
    if outcome.error_type == "Skipped":
        return first
    if outcome.error_type == "OutOfMemory":
        return f"out of memory (a result, not a crash): {first}"
    return f"{outcome.error_type}: {first[:400]}"


def _mib(value: int | None) -> str:
    return "?" if value is None else f"{value / 2**20:.0f} MiB"

"""`hwfit audit`: watch the devices for a window, then say per device where the purchased FLOPs went
(the waterfall), per process who used them, and what to change, each with its measured evidence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from hwfit.audit.advice import Advice, advise
from hwfit.audit.evidence import DEFAULT_MAX_ACCURACY_LOSS, Evidence, read_evidence, served_variant
from hwfit.audit.served import PoolWindow
from hwfit.audit.watch import Observation, WatchSpec, watch
from hwfit.audit.waterfall import AuditError, Share, Waterfall, WaterfallInputs, build_waterfall
from hwfit.core import Device, Figure
from hwfit.hardware import discover_cpu, discover_gpus, gpu_for_cuda_index, load_catalog, peak_flops, spec_for_gpu
from hwfit.store import ResultsStore


@dataclass(frozen=True)
class AuditOptions:
    precision: str | None = None  # the precision in use where no served pool says it (default fp32)
    price_usd_per_hour: float | None = None  # the whole device's price, instead of the catalog's
    max_accuracy_loss: float = DEFAULT_MAX_ACCURACY_LOSS
    useful_flops: float | None = None  # FLOPs a COMMAND reported doing (its framework's counter)
    useful_flops_source: str = ""


@dataclass
class PoolAudit:
    """One served pool: what it ran, and the store's evidence read for it."""

    window: PoolWindow
    evidence: Evidence | None
    flops_per_sample: float | None = None
    flops_source: str = ""
    compute_core_s: float | None = None  # CPU: the estimate of the time the model's arithmetic took
    compute_source: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = self.window.to_dict()
        data.update(
            flops_per_sample=self.flops_per_sample,
            flops_source=self.flops_source,
            compute_core_s=self.compute_core_s,
            compute_source=self.compute_source,
            measured_points=len(self.evidence.points) if self.evidence else 0,
        )
        return data


@dataclass
class AuditResult:
    observation: Observation
    waterfalls: list[Waterfall]
    pools: list[PoolAudit]
    advice: list[Advice]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        obs = self.observation
        return {
            "started_at": obs.started_at,
            "window_s": obs.window_s,
            "ended_because": obs.ended_because,
            "command_exit": obs.command_exit,
            "waterfalls": [w.to_dict() for w in self.waterfalls],
            "pools": [p.to_dict() for p in self.pools],
            "processes": [
                dict(p.to_dict(), cpu_share=p.cpu_s / (obs.logical_cpus * obs.window_s) if obs.window_s > 0 else None)
                for p in obs.processes
            ],
            "gpu_processes": obs.gpu_processes,
            "series": {
                device: {
                    "busy": line.points,
                    "gpm": {m: line.gpm_mean(m) for m in line.gpm},
                    "gpm_reason": line.gpm_reason,
                }
                for device, line in obs.series.items()
            },
            "advice": [a.to_dict() for a in self.advice],
            "notes": self.notes + obs.notes,
        }


def default_devices() -> tuple[str, ...]:
    """Every device of this machine: the CPU and each visible NVIDIA GPU."""
    gpus, _ = discover_gpus()
    devices = ["cpu"]
    for index in range(len(gpus)):
        if gpu_for_cuda_index(index, gpus) is None:
            break
        devices.append(f"cuda:{index}")
    return tuple(devices)


def run_audit(
    spec: WatchSpec,
    store: ResultsStore | None,
    options: AuditOptions = AuditOptions(),
    on_tick: Callable[[float, float | None], None] | None = None,
) -> AuditResult:
    """Watch, then build each device's waterfall and the advice. Raises AuditError for bad options."""
    for device in spec.devices:
        Device.parse(device)
    if options.price_usd_per_hour is not None and not options.price_usd_per_hour > 0:
        raise AuditError(f"--price must be > 0 USD per hour, got {options.price_usd_per_hour}")
    observation = watch(spec, on_tick)
    if observation.command_flops is not None:
        options = replace(
            options,
            useful_flops=observation.command_flops,
            useful_flops_source="FLOPs the command executed, counted by torch.utils.flop_counter (matmul, conv, "
            "attention; the counter slows the program)",
        )
    return audit_observation(observation, spec.devices, store, options)


def audit_observation(
    observation: Observation, devices: tuple[str, ...], store: ResultsStore | None, options: AuditOptions
) -> AuditResult:
    """The waterfalls and advice of a finished window (separate from `watch` so it can be tested on a
    recorded observation)."""
    notes: list[str] = []
    pools = [_pool_audit(window, store, options, observation.logical_cpus) for window in observation.pools]
    if observation.pools and store is None:
        notes.append("no results store: FLOPs per inference and the batch/precision evidence need `hwfit profile`")
    waterfalls = []
    for device in devices:
        device_pools = [p for p in pools if p.window.pool.device == device and not p.window.pool.emulated]
        waterfalls.append(build_waterfall(_inputs(device, observation, device_pools, options)))
    return AuditResult(observation, waterfalls, pools, advise(observation, waterfalls, pools, options), notes)


def _pool_audit(window: PoolWindow, store: ResultsStore | None, options: AuditOptions, cpus: int) -> PoolAudit:
    audit = PoolAudit(window, None)
    if store is None or not window.pool.variant_key:
        return audit
    served = served_variant(window.pool.variant_key, window.pool.replicas)
    evidence = read_evidence(store, window.pool.model, served, options.max_accuracy_loss)
    audit.evidence = evidence
    flops = evidence.flops_per_sample()
    if flops is not None:
        audit.flops_per_sample, where = flops
        audit.flops_source = f"counted from the model's graph at the profiled input shape ({where})"
    if window.pool.device == "cpu" and window.batches > 0 and window.mean_batch is not None:
        estimate = _batch_ms(evidence, window.mean_batch)
        if estimate is not None:
            batch_ms, where = estimate
            threads = served.threads or cpus
            audit.compute_core_s = window.batches * batch_ms / 1000.0 * threads
            audit.compute_source = (
                f"{window.batches:.0f} batches (counted by the server) x {batch_ms:.2f} ms per batch of "
                f"{window.mean_batch:.1f} ({where}) x {threads} threads"
            )
    return audit


def _batch_ms(evidence: Evidence, batch: float) -> tuple[float, str] | None:
    """The median time of one batch of `batch` samples on the served configuration, interpolated linearly
    between the measured batch sizes around it (the nearest one outside them)."""
    curve = {b: p for b, p in evidence.family_curve(evidence.served).items() if p.p50_ms is not None}
    if not curve:
        return None
    sizes = sorted(curve)
    below = [b for b in sizes if b <= batch]
    above = [b for b in sizes if b >= batch]
    if below and above and below[-1] != above[0]:
        low, high = curve[below[-1]], curve[above[0]]
        weight = (batch - below[-1]) / (above[0] - below[-1])
        ms = low.p50_ms + weight * (high.p50_ms - low.p50_ms)  # type: ignore[operator]
        return ms, f"p50 interpolated between batch {below[-1]} and {above[0]}, runs {low.run_id}/{high.run_id}"
    nearest = curve[below[-1]] if below else curve[above[0]]
    return nearest.p50_ms, f"p50 at batch {nearest.variant.batch_size}, {nearest.label}"  # type: ignore[return-value]


def _dtype(precision: str) -> str:
    return "int8" if precision.startswith("int8") else precision


def _precision_in_use(device_pools: list[PoolAudit], options: AuditOptions, notes: list[str]) -> str:
    precisions = {}
    for pool in device_pools:
        used = pool.window.pool.variant_key.split("/")[2]
        precisions[used] = precisions.get(used, 0.0) + pool.window.samples
    if precisions:
        chosen = max(precisions, key=precisions.get)  # type: ignore[arg-type]
        if len(precisions) > 1:
            notes.append(f"pools run {', '.join(sorted(precisions))}: the purchased peak is {chosen}'s (most samples)")
        return chosen
    if options.precision is None:
        notes.append("precision in use not known (no served pool on this device): fp32 assumed; say --precision")
        return "fp32"
    return options.precision


def _inputs(device: str, obs: Observation, device_pools: list[PoolAudit], options: AuditOptions) -> WaterfallInputs:
    notes: list[str] = []
    precision = _precision_in_use(device_pools, options, notes)
    main = max(device_pools, key=lambda p: p.window.samples, default=None)
    evidence = main.evidence if main is not None else None
    found = evidence.precision_factor() if evidence is not None else None
    if found is not None and peak_flops(device, _dtype(found[1].variant.precision)) is not None:
        # the device's faster arithmetic is part of what was bought: running a slower precision that the
        # store shows is not needed leaves it on the table, inside the waterfall, not above it
        notes.append(
            f"purchased at the {found[1].variant.precision} peak, not {precision}'s: the store shows "
            f"{found[1].variant.precision} within the accuracy tolerance ({found[1].label})"
        )
        precision = found[1].variant.precision
    peak = peak_flops(device, _dtype(precision))
    if peak is None:
        fp32 = peak_flops(device, "fp32")
        if fp32 is None:
            raise AuditError(f"{device}: no peak rate known for {precision} or fp32 (add the device to the catalog)")
        notes.append(f"{device} has no {precision} peak in the catalog: the fp32 peak is the purchased total")
        peak = fp32
    peak = _at_least_what_was_achieved(peak, evidence, _dtype(precision), notes)
    line = obs.series[device]
    window = obs.window_s
    if device == "cpu":
        busy, audited, computing, missing = _cpu_shares(obs, device_pools)
    else:
        busy, audited, computing, missing = _gpu_shares(line)
    if line.lost:
        notes.append(line.lost)
    useful, useful_missing = _useful(device, device_pools, options)
    batch = precision_gain = None
    if main is not None and evidence is not None and main.window.mean_batch is not None:
        batch = evidence.batch_factor(main.window.mean_batch)
        precision_gain = found[0] if found else None
    return WaterfallInputs(
        device=device,
        precision=precision,
        window_s=window,
        peak=peak,
        busy=busy,
        audited=audited,
        computing=computing,
        not_computing_missing=missing,
        useful_flops=useful,
        useful_missing=useful_missing,
        batch=batch,
        precision_gain=precision_gain,
        usd_per_s=_price_per_s(device, options),
        notes=tuple(notes),
    )


def _at_least_what_was_achieved(peak: Figure, evidence: Evidence | None, dtype: str, notes: list[str]) -> Figure:
    """The purchased peak is never below what the store shows this device delivering (a CPU's computed
    peak is at its base clock; boost clocks exceed it)."""
    best = evidence.best_achieved(dtype) if evidence is not None else None
    if best is None or best.achieved_flops_per_s is None or best.achieved_flops_per_s <= peak.value:
        return peak
    notes.append(
        f"the {dtype} peak {peak.value:.4g} FLOP/s ({peak.how}) is below what {best.label} delivered: "
        f"{best.achieved_flops_per_s:.4g} FLOP/s is the purchased peak"
    )
    source = f"{best.label} delivered {best.achieved_flops_per_s:.4g} FLOP/s, above the {peak.how} peak ({peak.source})"
    return Figure(best.achieved_flops_per_s, peak.unit, "measured", source)


def _cpu_shares(obs: Observation, pools: list[PoolAudit]) -> tuple[Share, Share | None, Share | None, str]:
    capacity = obs.logical_cpus * obs.window_s
    busy = Share(
        obs.cpu_busy if obs.cpu_busy is not None else 0.0,
        "measured",
        f"/proc/stat: 1 - (idle + iowait) of {obs.logical_cpus} logical CPUs over the window",
    )
    audited = None
    if obs.processes:
        names = ", ".join(sorted({f"{p.name}[{p.pid}]" for p in obs.processes if p.parent is None}))
        audited = Share(
            obs.process_cpu_s() / capacity,
            "measured",
            f"user + system CPU seconds of {names} and {sum(1 for p in obs.processes if p.parent)} child "
            f"process(es) / ({obs.logical_cpus} CPUs x {obs.window_s:.1f} s)",
        )
    estimates = [p for p in pools if p.compute_core_s is not None]
    if not estimates:
        why = "no hardware counters readable here; a served model's compute time is estimated from the store"
        return busy, audited, None, why if not pools else "the served configuration has no timed batch in the store"
    core_s = sum(p.compute_core_s for p in estimates)  # type: ignore[misc]
    source = "; ".join(p.compute_source for p in estimates) + f" / ({obs.logical_cpus} CPUs x {obs.window_s:.1f} s)"
    return busy, audited, Share(core_s / capacity, "estimated", source), ""


def _gpu_shares(line) -> tuple[Share, Share | None, Share | None, str]:
    mean = line.mean_busy()
    busy = Share(
        mean if mean is not None else 0.0,
        "measured",
        f"NVML utilization (share of time any kernel ran), mean of {len(line.points)} samples",
    )
    sm_active = line.gpm_mean("sm_active")
    if sm_active is None:
        return busy, None, None, line.gpm_reason or "NVML GPM gave no SM activity"
    windows = len(line.gpm.get("sm_active", []))
    source = f"NVML GPM SM activity (share of SM cycles with work), duration-weighted over {windows} windows"
    return busy, None, Share(sm_active, "measured", source), ""


def _useful(device: str, pools: list[PoolAudit], options: AuditOptions) -> tuple[Figure | None, str]:
    counted = [p for p in pools if p.flops_per_sample]
    if counted:
        flops = sum(p.window.samples * p.flops_per_sample for p in counted)  # type: ignore[operator]
        parts = "; ".join(
            f"{p.window.samples:.0f} samples of {p.window.pool.model} (counted by the server) x "
            f"{p.flops_per_sample:.4g} FLOPs ({p.flops_source})"
            for p in counted
        )
        return Figure(flops, "FLOP", "computed", parts), ""
    if options.useful_flops is not None:
        return Figure(options.useful_flops, "FLOP", "measured", options.useful_flops_source), ""
    if pools:
        return None, f"no FLOPs per inference in the store for {pools[0].window.pool.model}: run `hwfit profile` on it"
    return None, "nothing counts this device's work: audit a served model (--serve URL) or a PyTorch COMMAND"


def _price_per_s(device: str, options: AuditOptions) -> Figure | None:
    if options.price_usd_per_hour is not None:
        return Figure(options.price_usd_per_hour / 3600.0, "USD/s", "spec", "--price (USD per hour)")
    catalog = load_catalog()
    if device == "cpu":
        cores = discover_cpu().physical_cores or 1
        price = catalog.cpu_price
        if price is None:
            return None
        return Figure(
            price.value * cores / 3600.0,
            "USD/s",
            "estimated",
            f"{cores} cores x {price.value} USD/core-hour ({price.source})",
        )
    gpus, _ = discover_gpus()
    gpu = gpu_for_cuda_index(Device.parse(device).index or 0, gpus)
    spec = spec_for_gpu(gpu.name) if gpu else None
    if spec is None or spec.price is None or spec.price.unit != "USD/GPU-hour":
        return None
    return Figure(
        spec.price.value / 3600.0, "USD/s", "estimated", f"{spec.price.value} USD/GPU-hour ({spec.price.source})"
    )

"""What to change, from the window and the store: each item says what to do, the measured evidence,
and the expected gain. Only what the measurements support is said."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from hwfit.audit.waterfall import IDLE, NOT_COMPUTING, OTHER, Waterfall

if TYPE_CHECKING:
    from hwfit.audit.audit import AuditOptions, PoolAudit
    from hwfit.audit.watch import Observation

WORTH_SAYING = 1.1  # a measured factor below this is within the noise of a shared machine
MOSTLY_IDLE = 0.5
NOTABLE_SHARE = 0.2


@dataclass(frozen=True)
class Advice:
    device: str
    action: str  # what to do
    evidence: str  # the measurement it rests on
    gain: str  # what it is expected to give

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def advise(
    obs: Observation, waterfalls: list[Waterfall], pools: list[PoolAudit], options: AuditOptions
) -> list[Advice]:
    items: list[Advice] = []
    for waterfall in waterfalls:
        device_pools = [p for p in pools if p.window.pool.device == waterfall.device]
        items += _from_pools(waterfall, device_pools)
        items += _from_window(waterfall, obs)
    return items


def _from_pools(waterfall: Waterfall, pools: list[PoolAudit]) -> list[Advice]:
    items: list[Advice] = []
    device = waterfall.device
    for pool in pools:
        evidence, window = pool.evidence, pool.window
        if window.samples <= 0:
            continue  # a pool that ran nothing in the window (a fallback) has nothing to change yet
        name = f"{window.pool.model} ({window.pool.pool})"
        if evidence is None or not evidence.found:
            items.append(
                Advice(
                    device,
                    f"profile {window.pool.model}: `hwfit profile {window.pool.model}`",
                    "the results store has no measurement of it on this device",
                    "the batch and precision steps, and advice backed by measurements",
                )
            )
            continue
        if window.mean_batch is not None:
            batch = evidence.batch_factor(window.mean_batch)
            if batch is not None and batch.value >= WORTH_SAYING:
                items.append(
                    Advice(
                        device,
                        f"serve {name} at max {batch.better} (mean batch served: {window.mean_batch:.1f})",
                        batch.evidence,
                        f"{batch.value:.1f}x throughput per busy second (where the traffic fills the batch)",
                    )
                )
        found = evidence.precision_factor()
        if found is not None and found[0].value >= WORTH_SAYING:
            factor, point = found
            items.append(
                Advice(
                    device,
                    f"serve {name} in {factor.better} instead of {evidence.served.precision}",
                    factor.evidence,
                    f"{factor.value:.1f}x throughput; accuracy loss {point.accuracy_loss:.4f} within the "
                    f"tolerance {evidence.max_accuracy_loss}",
                )
            )
        best = evidence.best_admissible()
        served_best = max(evidence.family_curve(evidence.served).values(), key=lambda p: p.samples_per_s, default=None)
        if (
            best is not None
            and served_best is not None
            and best.samples_per_s >= WORTH_SAYING * served_best.samples_per_s
        ):
            items.append(
                Advice(
                    device,
                    f"re-plan {window.pool.model}: the best measured configuration within tolerance is "
                    f"{best.variant.key}",
                    f"run {best.run_id}: {best.samples_per_s:.0f} samples/s (p99 {best.p99_ms or 0:.1f} ms) vs "
                    f"{served_best.samples_per_s:.0f} for the served {served_best.variant.key} "
                    f"(run {served_best.run_id})",
                    f"{best.samples_per_s / served_best.samples_per_s:.1f}x capacity on the same device "
                    "(`hwfit plan` chooses it against your SLO)",
                )
            )
    return items


def _from_window(waterfall: Waterfall, obs: Observation) -> list[Advice]:
    items: list[Advice] = []
    device = waterfall.device
    idle = waterfall.step(IDLE)
    if idle is not None and idle.share >= MOSTLY_IDLE:
        items.append(_idle_advice(waterfall, obs, idle.share))
    other = waterfall.step(OTHER)
    if other is not None and other.share >= NOTABLE_SHARE:
        items.append(
            Advice(
                device,
                "move or stop the other work on this device, or audit it too",
                f"{other.share:.0%} of the device was busy with processes outside the audit ({other.source})",
                "that share back for the audited work",
            )
        )
    not_computing = waterfall.step(NOT_COMPUTING)
    busy_audited = 1.0 - sum(s.share for s in waterfall.losses if s.name in (IDLE, OTHER))
    if not_computing is not None and busy_audited > 0 and not_computing.share / busy_audited >= NOTABLE_SHARE:
        wait = sum(p.run_queue_wait_s or 0.0 for p in obs.processes)
        contention = f"; its threads waited {wait:.1f} s for a core (run queue)" if wait > 0.05 * obs.window_s else ""
        items.append(
            Advice(
                device,
                "cut the work around the model: binary tensors instead of JSON, larger batches per request, "
                "fewer threads per replica if they contend",
                f"{not_computing.share / busy_audited:.0%} of the audited busy time was outside the model's arithmetic "
                f"({not_computing.source}){contention}",
                "up to that share of the busy time",
            )
        )
    return items


def _idle_advice(waterfall: Waterfall, obs: Observation, idle_share: float) -> Advice:
    device = waterfall.device
    line = obs.series.get(device)
    if device != "cpu" and line is not None and line.peak_memory_bytes:
        peak = line.peak_memory_bytes
        return Advice(
            device,
            "consolidate: serve more models (or replicas) on this GPU, or a smaller MIG slice",
            f"idle {idle_share:.0%} of the window (measured); peak memory in use {peak / 2**30:.1f} GiB",
            f"up to {idle_share:.0%} of the GPU's cost",
        )
    busy_processes = sorted(obs.processes, key=lambda p: p.cpu_s, reverse=True)
    used = sum(p.cpu_s for p in obs.processes) / obs.window_s if obs.window_s > 0 else 0.0
    evidence = f"idle {idle_share:.0%} of the window (measured, {obs.logical_cpus} logical CPUs)"
    if busy_processes:
        evidence += f"; the audited processes used {used:.2f} CPUs on average"
    return Advice(
        device,
        "use the idle cores: more threads or replicas per pool, or more models on this machine",
        evidence,
        f"up to {idle_share:.0%} of the machine's cost",
    )

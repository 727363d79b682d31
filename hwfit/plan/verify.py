"""A plan judged on other measurements (a fuller grid, a later profile): what its pools would do
there, not what the plan expected from the points it was planned on."""

from __future__ import annotations

from hwfit.core import Config, HwfitError, Layout, Variant
from hwfit.plan.configs import family_accuracy, group_points
from hwfit.plan.evaluate import DeviceOffer, Evaluation, evaluate_at
from hwfit.plan.schema import Plan, PoolPlan
from hwfit.plan.search import measured_config_data
from hwfit.plan.slo import Slo
from hwfit.store import Measurement


class VerifyError(HwfitError):
    """A plan's pool cannot be judged on the measurements given (its configuration was not measured)."""


def pool_config(pool: PoolPlan) -> Config:
    """The configuration a pool runs: its variant with its replicas per device."""
    variant = Variant.parse(pool.variant)
    return Config(variant.family, Layout(pool.replicas_per_device, variant.threads))


def verify_plan(
    plan: Plan,
    measurements: list[Measurement],
    slo: Slo,
    offers: dict[str, DeviceOffer],
    default_accuracy_loss: float | None = None,
) -> list[Evaluation]:
    """Each serving pool of `plan` (standby fallbacks left out) at its planned rate, batching and units,
    simulated on the service times, jitter, energy and accuracy of `measurements`."""
    groups = group_points(measurements)
    accuracy = family_accuracy(groups)
    evaluations = []
    for pool in plan.pools:
        if pool.role == "fallback":
            continue
        key = pool_config(pool)
        group = groups.get(key)
        if group is None or not group.points:
            raise VerifyError(f"pool {pool.name}: no measured point of {key.label} to judge it on")
        data = measured_config_data(group, accuracy, groups, offers)
        evaluations.append(
            evaluate_at(
                data,
                slo,
                offers[key.family.device],
                pool.devices,
                pool.max_batch_size,
                pool.max_queue_delay_ms,
                default_accuracy_loss,
                rate_rps=pool.expected.rate_rps,
            )
        )
    return evaluations

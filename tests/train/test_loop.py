"""The measured loop on real loaders and models: the data-bound diagnosis on a real starved loader,
and each way a user's setup can fail says what happened and what to do."""

import pytest

from hwfit.train import (
    Changes,
    FactoryError,
    LoaderError,
    LossNotFinite,
    TrainError,
    load_workload,
    run_training,
)
from tests.train.factories import SLOW_ITEM_S

F = "tests.train.factories"


def test_a_starved_loader_is_diagnosed_as_data_bound_from_the_breakdown():
    result = run_training(f"{F}:starved", steps=5, warmup=1, measure_energy=False)
    breakdown = result.breakdown
    assert breakdown.data_bound, breakdown.to_dict()
    # 16 items x 10 ms each: the data phase holds at least the loader's sleeping time
    assert breakdown.phases_s["data"] >= 16 * SLOW_ITEM_S
    assert "data-bound" in breakdown.diagnosis()


def test_fast_data_with_real_compute_is_not_data_bound():
    breakdown = run_training(f"{F}:compute_heavy", steps=5, warmup=1, measure_energy=False).breakdown
    assert not breakdown.data_bound, breakdown.to_dict()
    assert breakdown.bottleneck in ("forward", "backward", "optimizer")


def test_same_seed_and_data_order_give_the_same_losses_with_or_without_workers():
    plain = run_training(f"{F}:tiny", steps=6, warmup=1, measure_energy=False, count_flops=False)
    workers = run_training(
        f"{F}:tiny", Changes(num_workers=2), steps=6, warmup=1, measure_energy=False, count_flops=False
    )
    assert plain.losses == workers.losses
    assert plain.losses[-1] < plain.losses[0]  # it learns


def test_result_carries_counted_flops_memory_and_rates():
    result = run_training(f"{F}:tiny", steps=4, warmup=1, measure_energy=False)
    # 2 x 16 x (16 x 32 + 32 x 2) multiply-adds forward, about twice that backward
    forward = 2 * 16 * (16 * 32 + 32 * 2)
    assert 2 * forward <= result.flops_per_step <= 4 * forward
    assert result.achieved_flops > 0
    assert result.peak_memory_bytes > 0
    assert result.breakdown.samples_per_s > 0 and result.batch_size == 16


def test_a_loader_that_raises_names_the_error_and_the_fix():
    with pytest.raises(LoaderError, match=r"raised ValueError at step 0: cannot decode item .*num_workers=0"):
        run_training(f"{F}:broken_loader", steps=3, warmup=1, measure_energy=False, count_flops=False)


def test_a_nan_loss_says_at_which_step_and_what_to_check():
    with pytest.raises(LossNotFinite, match=r"loss is nan at step 0 .*learning rate"):
        run_training(f"{F}:nan_loss", steps=3, warmup=1, measure_energy=False, count_flops=False)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("not_a_dict", r"returned tuple; expected a dict with model, optimizer, loss_fn and data"),
        ("foreign_optimizer", r"optimizer's parameters are not the model's"),
        ("missing", r"cannot import training factory"),
    ],
)
def test_a_factory_that_returns_the_wrong_thing_says_what_was_expected(factory, message):
    with pytest.raises(FactoryError, match=message):
        load_workload(f"{F}:{factory}")


def test_unknown_target_lists_the_built_ins():
    with pytest.raises(FactoryError, match=r"built-in \(lm, cnn, cnn-slow-data\)"):
        load_workload("nonsense")


def test_fp16_on_a_cpu_points_to_bf16():
    with pytest.raises(TrainError, match="on CPUs use bf16"):
        run_training(f"{F}:tiny", Changes(amp="fp16"), steps=3, warmup=1, measure_energy=False, count_flops=False)


def test_bf16_autocast_and_checkpointing_run_on_the_built_in_lm():
    workload = load_workload("lm")
    assert workload.tokens_per_sample == 64
    result = run_training(
        workload, Changes(amp="bf16", checkpointing=True, batch_size=2), steps=3, warmup=1, measure_energy=False
    )
    assert result.breakdown.tokens_per_s == pytest.approx(result.breakdown.samples_per_s * 64)
    assert "activation checkpointing on 2 block(s)" in result.notes


def test_a_fused_optimizer_is_rebuilt_over_the_same_parameters_and_learns_the_same():
    plain = run_training(f"{F}:tiny", steps=4, warmup=1, measure_energy=False, count_flops=False)
    fused = run_training(
        f"{F}:tiny", Changes(fused_optimizer=True), steps=4, warmup=1, measure_energy=False, count_flops=False
    )
    assert fused.losses == pytest.approx(plain.losses, rel=1e-4)

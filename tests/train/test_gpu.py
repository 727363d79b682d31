"""CUDA paths: phases timed with CUDA events, fp16 with a grad scaler, and an out-of-memory as a result."""

import pytest

from hwfit.train import Changes, OutOfMemory, StepProfiler, run_training

pytestmark = pytest.mark.gpu


def test_cuda_events_time_device_work_and_add_up(torch_cuda):
    torch = torch_cuda
    profiler = StepProfiler("cuda:0", warmup_steps=1)
    assert "CUDA events" in profiler.timer
    a = torch.randn(2048, 2048, device="cuda")
    for _ in range(3):
        with profiler.forward():
            for _ in range(10):
                a = a @ a / 2048
        profiler.step(samples=1)
    breakdown = profiler.breakdown()
    assert breakdown.phases_s["forward"] > 0
    assert sum(breakdown.phases_s.values()) + breakdown.rest_s == pytest.approx(breakdown.step_s)


def test_fp16_with_the_grad_scaler_trains(torch_cuda):
    result = run_training("cnn", Changes(amp="fp16", grad_scaler=True), steps=5, warmup=1, device="cuda:0")
    assert result.losses[-1] < result.losses[0] * 1.5
    assert "CUDA events" in result.breakdown.timer
    assert result.peak_memory_bytes > 0


def test_a_batch_beyond_memory_is_an_out_of_memory_result(torch_cuda):
    with pytest.raises(OutOfMemory, match="out of memory at step 0 with batch size 400000.*smaller batch"):
        run_training(
            "tests.train.factories:wide",
            Changes(batch_size=400_000),
            steps=3,
            warmup=1,
            device="cuda:0",
            count_flops=False,
            measure_energy=False,
        )

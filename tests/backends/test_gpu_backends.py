"""CUDA paths: real code, run where a GPU exists. Each test skips by itself with the exact reason a
machine lacks what it needs (the GPU, torch CUDA, onnxruntime-gpu, TensorRT, a model's package),
so a GPU machine that carries only some of them runs the rest."""

import numpy as np
import pytest

from hwfit.backends import get_backend, load_variant
from hwfit.core import Variant
from hwfit.models import compare_outputs, within_tolerance
from hwfit.profile import reference_outputs, run_in_batches

pytestmark = pytest.mark.gpu

# torch.compile compiles once per precision and model: one precision here; the device check
# (bench/gpu_check.sh) profiles every precision of it.
# ort-trt fp32 comes last: it sets NVIDIA_TF32_OVERRIDE=0 for the process (as it does in each
# point's own process), after which no tf32 variant can run in it.
CASES = [
    ("ort", "fp32"),
    ("ort", "tf32"),
    ("ort", "fp16"),
    ("ort-trt", "tf32"),
    ("ort-trt", "fp16"),
    ("ort-trt", "int8-static"),
    ("torch", "fp32"),
    ("torch", "tf32"),
    ("torch", "fp16"),
    ("torch", "bf16"),
    ("torch-compile", "fp16"),
    ("ort-trt", "fp32"),
]


def _runnable(model, variant: Variant) -> None:
    reason = get_backend(variant.backend).unavailable_reason(model, variant)
    if reason:
        pytest.skip(f"{variant.key}: {reason}")


@pytest.mark.parametrize("backend", ["ort", "torch"])
def test_device_resident_io_gives_the_same_answer(builtin_or_skip, backend):
    cnn = builtin_or_skip("cnn")
    variant = Variant(backend, "cuda:0", "fp32", 4)
    _runnable(cnn, variant)
    with load_variant(cnn, variant) as runner:
        assert runner.supports_device_io
        inputs = cnn.synthetic_inputs(4)
        handle = runner.to_device(inputs)
        resident = runner.to_host(runner.run_on_device(handle))
        plain = runner.run(inputs)
    np.testing.assert_allclose(resident["logits"], plain["logits"], rtol=1e-5)


def test_torch_fp32_is_ieee_and_tf32_is_not(builtin_or_skip, torch_cuda):
    """After loading, the process's matmuls follow the variant: fp32 keeps ~1e-6 relative error on
    a large product, tf32 (10-bit mantissa inputs) about 1e-3."""
    torch = torch_cuda
    cnn = builtin_or_skip("cnn")
    a = torch.randn(2048, 2048, device="cuda:0", generator=torch.Generator("cuda:0").manual_seed(0))
    exact = (a.double() @ a.double()).float()

    def relative_error() -> float:
        return float((a @ a - exact).abs().max() / exact.abs().max())

    for precision, low, high in (("fp32", 0.0, 1e-4), ("tf32", 1e-4, 1e-1)):
        variant = Variant("torch", "cuda:0", precision, 4)
        _runnable(cnn, variant)
        with load_variant(cnn, variant) as runner:
            assert any("fp32 math" in note for note in runner.stats.notes), runner.stats.notes
            assert torch.backends.cudnn.allow_tf32 == (precision == "tf32")
            assert low <= relative_error() < high, (precision, relative_error())


def test_peak_memory_counts_only_the_runner_measured(builtin_or_skip, torch_cuda):
    """A large first runner must not leave its peak in the second, small one's figure."""
    cnn = builtin_or_skip("cnn")
    with load_variant(cnn, Variant("torch", "cuda:0", "fp32", 4096)) as big:
        big.run(cnn.synthetic_inputs(4096))
        big_peak = big.device_memory_peak_bytes()
    with load_variant(cnn, Variant("torch", "cuda:0", "fp32", 1)) as small:
        small.run(cnn.synthetic_inputs(1))
        small_peak = small.device_memory_peak_bytes()
    assert small_peak < big_peak / 10, (small_peak, big_peak)


@pytest.mark.parametrize("model_name", ["cnn", "minilm"])
@pytest.mark.parametrize("backend,precision", CASES)
def test_gpu_variant_agrees_with_fp32(builtin_or_skip, model_name, backend, precision):
    model = builtin_or_skip(model_name)
    variant = Variant(backend, "cuda:0", precision, 8)
    _runnable(model, variant)
    inputs, _ = model.sample_inputs(16, seed=7)
    reference, _ = reference_outputs(model, inputs)
    with load_variant(model, variant) as runner:
        outputs = run_in_batches(runner, inputs, 8)
    accurate, verdict = within_tolerance(model, compare_outputs(model, outputs, reference))
    assert accurate, verdict

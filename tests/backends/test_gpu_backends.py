"""CUDA paths: real code, run where a GPU exists, skipped with a reason here."""

import numpy as np
import pytest

from hwfit.backends import get_backend, load_variant
from hwfit.core import Variant
from hwfit.models import compare_outputs, within_tolerance
from hwfit.profile import reference_outputs, run_in_batches

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize(
    "backend,precision",
    [
        ("ort", "fp32"),
        ("ort", "fp16"),
        ("torch", "fp32"),
        ("torch", "fp16"),
        ("torch", "bf16"),
        ("torch-compile", "fp16"),
        ("openvino", "fp32"),
        ("ort-trt", "fp16"),
    ],
)
def test_gpu_variant_agrees_with_fp32(minilm, backend, precision):
    variant = Variant(backend, "cuda:0", precision, 8)
    reason = get_backend(backend).unavailable_reason(minilm, variant)
    if reason:
        pytest.skip(reason)
    inputs, _ = minilm.sample_inputs(16, seed=7)
    reference, _ = reference_outputs(minilm, inputs)
    with load_variant(minilm, variant) as runner:
        outputs = run_in_batches(runner, inputs, 8)
    accurate, verdict = within_tolerance(minilm, compare_outputs(minilm, outputs, reference))
    assert accurate, verdict


def test_device_resident_io_gives_the_same_answer(cnn):
    variant = Variant("ort", "cuda:0", "fp32", 4)
    with load_variant(cnn, variant) as runner:
        assert runner.supports_device_io
        inputs = cnn.synthetic_inputs(4)
        handle = runner.to_device(inputs)
        resident = runner.to_host(runner.run_on_device(handle))
        plain = runner.run(inputs)
    np.testing.assert_allclose(resident["logits"], plain["logits"], rtol=1e-5)

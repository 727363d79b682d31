"""Every backend × precision available on this CPU runs the built-ins and agrees with fp32."""

import numpy as np
import pytest

from hwfit.backends import backend_names, candidate_variants, get_backend, load_variant
from hwfit.core import PRECISIONS, InputSpecError, Variant, VariantUnavailable
from hwfit.models import compare_outputs, evaluate_accuracy, within_tolerance
from hwfit.profile import reference_outputs, run_in_batches

CPU_BACKENDS = ["ort", "openvino", "torch", "torch-compile"]
BATCH = 4
# Measured here, and reported by `hwfit variants` as "inaccurate": torch.ao's dynamic int8 (per-channel
# weights, 7-bit reduce-range activations on x86) keeps mean cosine ~0.977 to fp32 on MiniLM, where
# ONNX Runtime's keeps 0.993. The test pins that the check flags it, and that it is lossy, not broken.
KNOWN_LOSSY = {("minilm", "torch", "int8-dynamic"): (0.95, 0.99)}


def _combos():
    """Each backend with every precision it implements; the device decides whether it can run."""
    return [(b, p) for b in CPU_BACKENDS for p in PRECISIONS if p in get_backend(b).precisions]


@pytest.fixture(scope="module")
def references(minilm, cnn):
    made = {}
    for model in (minilm, cnn):
        inputs, _ = model.sample_inputs(16, seed=7)
        made[model.name] = (inputs, reference_outputs(model, inputs)[0])
    return made


def _check(model, backend, precision, references):
    variant = Variant(backend, "cpu", precision, BATCH)
    reason = get_backend(backend).unavailable_reason(model, variant)
    if reason:
        assert len(reason) > 10  # never silently dropped: a reason a person can read
        pytest.skip(f"{variant.key}: {reason}")
    inputs, reference = references[model.name]
    with load_variant(model, variant) as runner:
        outputs = run_in_batches(runner, inputs, BATCH)
        agreement = compare_outputs(model, outputs, reference)
        accurate, verdict = within_tolerance(model, agreement)
        lossy = KNOWN_LOSSY.get((model.name, backend, precision))
        if lossy:
            assert not accurate and lossy[0] < agreement.cosine_mean < lossy[1], verdict
        else:
            assert accurate, f"{variant.key}: {verdict}"
        return runner, agreement, evaluate_accuracy(model, runner.run, BATCH)


@pytest.mark.parametrize("backend,precision", _combos())
def test_minilm_agrees_with_fp32(minilm, references, backend, precision):
    _, agreement, _ = _check(minilm, backend, precision, references)
    if precision == "fp32":
        assert agreement.cosine_min > 0.99999


@pytest.mark.parametrize("backend,precision", _combos())
def test_cnn_keeps_its_accuracy(cnn, references, backend, precision):
    _, agreement, accuracy = _check(cnn, backend, precision, references)
    assert accuracy > 0.95
    assert agreement.top1_agreement >= 0.98


def test_per_tensor_int8_is_caught_as_inaccurate(minilm, references):
    """Per-tensor dynamic int8 loses accuracy on MiniLM (mean cosine ~0.966 on real sentences): the
    check must flag it."""
    inputs, reference = references["minilm"]
    variant = Variant("ort", "cpu", "int8-dynamic", BATCH, knobs=(("per_channel", "false"),))
    with load_variant(minilm, variant) as runner:
        agreement = compare_outputs(minilm, run_in_batches(runner, inputs, BATCH), reference)
    accurate, verdict = within_tolerance(minilm, agreement)
    assert not accurate, verdict
    assert agreement.cosine_mean < 0.98


def test_conversions_are_cached(cnn):
    variant = Variant("ort", "cpu", "int8-static", 2)
    with load_variant(cnn, variant):
        pass
    with load_variant(cnn, variant) as again:
        assert again.stats.convert_cached and again.stats.convert_s == 0.0


def test_openvino_precision_is_set_and_verified(minilm):
    variant = Variant("openvino", "cpu", "fp32", 2)
    if get_backend("openvino").unavailable_reason(minilm, variant):
        pytest.skip("openvino not installed")
    with load_variant(minilm, variant) as runner:
        assert any("inference precision float32 (verified" in note for note in runner.stats.notes)


@pytest.mark.parametrize(
    ("threads", "replicas", "pinned"),
    [(None, 1, True), (1, 2, False), (None, 2, False)],
    ids=["one process on every core", "2 replicas of 1 thread", "2 replicas of every core"],
)
def test_openvino_pins_threads_only_where_one_process_owns_the_cpu(minilm, threads, replicas, pinned):
    # pinned, K processes of OpenVINO all ran on the first cores of the mask (2 replicas = one's throughput)
    knobs = (("replicas", str(replicas)),) if replicas > 1 else ()
    variant = Variant("openvino", "cpu", "fp32", 2, threads, knobs)
    if get_backend("openvino").unavailable_reason(minilm, variant):
        pytest.skip("openvino not installed")
    with load_variant(minilm, variant) as runner:
        assert runner.compiled.get_property("ENABLE_CPU_PINNING") is pinned


def test_wrong_shape_names_the_tensor(cnn):
    with load_variant(cnn, Variant("ort", "cpu", "fp32", 2)) as runner:
        with pytest.raises(InputSpecError, match="input 'image'"):
            runner.run({"image": np.zeros((2, 1, 7, 8), np.float32)})
        with pytest.raises(InputSpecError, match="dtype float64"):
            runner.run({"image": np.zeros((2, 1, 8, 8), np.float64)})


def test_unavailable_variants_carry_reasons(minilm):
    rows = candidate_variants(minilm, backends=backend_names(), devices=["cpu"], batch_sizes=[1])
    reasons = {variant.key: reason for variant, reason in rows}
    assert "CPUExecutionProvider" in reasons["ort/cpu/fp16/b1"]
    assert reasons["ort/cpu/fp32/b1"] is None
    with pytest.raises(VariantUnavailable, match="ort/cpu/fp16/b1"):
        load_variant(minilm, Variant("ort", "cpu", "fp16", 1))


def test_onnx_only_model_has_no_torch_variants(minilm):
    from hwfit.models import load_model

    onnx_model = load_model(str(minilm.onnx_path()))
    reason = get_backend("torch").unavailable_reason(onnx_model, Variant("torch"))
    assert "ONNX file" in reason

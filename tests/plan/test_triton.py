"""Triton export: one model per exportable pool, config.pbtxt matching the pool."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from hwfit.plan import ExportError, export_triton, load_plan

EXAMPLE = Path(__file__).parent / "data" / "example-plan.yaml"


def _tiny_onnx(path: Path) -> Path:
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "S"])
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["B", 384])
    node = helper.make_node("Cast", ["input_ids"], ["embedding"], to=TensorProto.FLOAT)  # shape is not the point
    model = helper.make_model(helper.make_graph([node], "tiny", [ids], [out]))
    onnx.save(model, path)
    return path


def test_primary_pool_exported_under_the_model_name_and_torch_pool_left_out_with_reason(tmp_path):
    plan = load_plan(EXAMPLE)
    model_file = _tiny_onnx(tmp_path / "m.onnx")
    result = export_triton(plan, {pool.name: model_file for pool in plan.pools}, tmp_path / "repo")
    assert list(result.models) == ["minilm"]
    config = (tmp_path / "repo" / "minilm" / "config.pbtxt").read_text()
    assert 'backend: "onnxruntime"' in config and "max_batch_size: 8" in config
    assert "instance_group [ { count: 2 kind: KIND_CPU } ]" in config
    assert "max_queue_delay_microseconds: 2000" in config
    assert 'input [ { name: "input_ids" data_type: TYPE_INT64 dims: [ -1 ] } ]' in config
    assert 'output [ { name: "embedding" data_type: TYPE_FP32 dims: [ 384 ] } ]' in config
    assert 'key: "intra_op_thread_count" value: { string_value: "1" }' in config
    assert "TorchScript" in result.left_out["cpu-torch-fp32"]


def test_a_plan_with_no_exportable_pool_is_an_error_naming_why(tmp_path):
    plan = load_plan(EXAMPLE)
    plan.pools = [plan.pools[1]]
    plan.fallback = [plan.pools[0].name]
    with pytest.raises(ExportError, match="cpu-torch-fp32: backend 'torch'"):
        export_triton(plan, {}, tmp_path / "repo")


def test_a_file_that_is_not_onnx_is_a_clear_error(tmp_path):
    plan = load_plan(EXAMPLE)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ExportError, match="cannot read .* as ONNX"):
        export_triton(plan, {plan.pools[0].name: bad}, tmp_path / "repo")

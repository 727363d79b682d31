"""Model sources: a built-in name, an ONNX file, a TorchScript or torch.export file,
`package.module:factory`, or a local Hugging Face folder — all become a `Model`."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from hwfit.core import ModelSourceError
from hwfit.models.model import Model, hash_bytes_of_file, hash_module
from hwfit.models.onnx_graph import input_spec_from_onnx, load_onnx, output_names_from_onnx
from hwfit.models.spec import BATCH, Dim, InputSpec, TensorSpec

TORCH_TO_NUMPY = {
    "torch.float32": "float32",
    "torch.float16": "float16",
    "torch.int64": "int64",
    "torch.int32": "int32",
    "torch.bool": "bool",
    "torch.uint8": "uint8",
    "torch.float64": "float64",
    "torch.int8": "int8",
}


def load_model(ref: str, shape_overrides: Mapping[str, Sequence[Dim]] | None = None) -> Model:
    """Resolve what the user named into a Model; `shape_overrides` come from `--shape`."""
    model = _resolve(ref, shape_overrides or {})
    if shape_overrides:
        model = replace(model, inputs=model.inputs.with_overrides(shape_overrides))
    return model


def _resolve(ref: str, overrides: Mapping[str, Sequence[Dim]]) -> Model:
    from hwfit.models.builtins import BUILTINS, load_builtin

    if ref in BUILTINS:
        return load_builtin(ref)
    path = Path(ref).expanduser()
    if path.is_dir():
        return from_huggingface_folder(path)
    if path.suffix == ".onnx":
        return from_onnx_file(path)
    if path.suffix in (".pt", ".pth", ".ts", ".pt2"):
        return from_torch_file(path, overrides)
    if ":" in ref and not path.exists():
        return from_factory(ref)
    if not path.exists():
        raise ModelSourceError(
            f"model '{ref}' not found: expected a built-in ({', '.join(sorted(BUILTINS))}), "
            "a .onnx file, a TorchScript (.pt) or torch.export (.pt2) file, "
            "a Hugging Face folder, or package.module:factory"
        )
    raise ModelSourceError(
        f"cannot tell what kind of model {path} is from its suffix '{path.suffix}': "
        "expected .onnx, .pt/.pth/.ts (TorchScript), .pt2 (torch.export) or a folder"
    )


def from_onnx_file(path: Path) -> Model:
    proto = load_onnx(path, load_weights=True)
    return Model(
        name=path.stem,
        source=str(path),
        kind="onnx",
        inputs=input_spec_from_onnx(proto),
        output_names=output_names_from_onnx(proto),
        content_hash=hash_bytes_of_file(path),
        description=f"ONNX file (opset {proto.opset_import[0].version})",
        onnx_file=path.resolve(),
    )


def from_torch_file(path: Path, overrides: Mapping[str, Sequence[Dim]]) -> Model:
    """TorchScript (`torch.jit.save`) or torch.export (`torch.export.save`) file."""
    if not path.exists():
        raise ModelSourceError(f"model file not found: {path}")
    if path.suffix == ".pt2":
        return _from_exported_program(path)
    return _from_torchscript(path, overrides)


def _from_exported_program(path: Path) -> Model:
    import torch

    try:
        program = torch.export.load(str(path))
    except Exception as error:
        raise ModelSourceError(
            f"{path} is not a torch.export program ({error}); expected a file from torch.export.save"
        ) from error
    placeholders = [n for n in program.graph.nodes if n.op == "placeholder"]
    user_inputs = program.graph_signature.user_inputs
    tensors = []
    for node in placeholders:
        if node.name not in user_inputs:
            continue
        value = node.meta.get("val")
        shape = tuple(
            int(d) if str(d).isdigit() else (BATCH if axis == 0 else str(d)) for axis, d in enumerate(value.shape)
        )
        tensors.append(TensorSpec(node.name, TORCH_TO_NUMPY.get(str(value.dtype), "float32"), shape))
    inputs = InputSpec(tuple(tensors))
    outputs = tuple(f"output_{i}" for i in range(len(program.graph_signature.user_outputs)))

    def factory():
        return _Eval(program.module())

    return Model(
        path.stem,
        str(path),
        "torch-export",
        inputs,
        outputs,
        hash_bytes_of_file(path),
        description="torch.export program",
        module_factory=factory,
    )


def _from_torchscript(path: Path, overrides: Mapping[str, Sequence[Dim]]) -> Model:
    import torch

    try:
        module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as error:
        raise ModelSourceError(
            f"{path} is not a TorchScript module ({error}); expected a file from torch.jit.save"
        ) from error
    arg_names = [arg.name for arg in module.forward.schema.arguments[1:]]
    missing = [name for name in arg_names if name not in overrides]
    if missing:
        raise ModelSourceError(
            f"a TorchScript file does not record input shapes: give each input's shape with --shape, "
            f"e.g. --shape {missing[0]}=B,3,224,224 (inputs: {arg_names}; float32 is assumed)"
        )
    tensors = tuple(TensorSpec(name, "float32", tuple(overrides[name])) for name in arg_names)
    return Model(
        path.stem,
        str(path),
        "torchscript",
        InputSpec(tensors),
        ("output_0",),
        hash_bytes_of_file(path),
        description="TorchScript module",
        module_factory=lambda: module,
    )


def from_factory(ref: str) -> Model:
    """`package.module:factory` returning (nn.Module, example_inputs) — a tuple or dict of tensors."""
    module_name, _, attr = ref.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise ModelSourceError(f"cannot import factory '{ref}': {error}; expected package.module:function") from error
    try:
        made = factory()
    except Exception as error:
        raise ModelSourceError(f"factory '{ref}' raised {type(error).__name__}: {error}") from error
    if not (isinstance(made, tuple) and len(made) == 2):
        raise ModelSourceError(
            f"factory '{ref}' returned {type(made).__name__}; expected a tuple (nn.Module, example_inputs)"
        )
    module, example = made
    if not hasattr(module, "state_dict"):
        raise ModelSourceError(
            f"factory '{ref}' returned {type(module).__name__} as its model; expected a torch.nn.Module"
        )
    names, tensors = _example_items(ref, example)
    spec = InputSpec(tuple(_spec_from_example(name, t) for name, t in zip(names, tensors)))
    module.eval()
    outputs = _output_names(module, tensors)
    return Model(
        attr,
        ref,
        "factory",
        spec,
        outputs,
        hash_module(module),
        description=f"{type(module).__name__} from {ref}",
        module_factory=lambda: module,
    )


def _example_items(ref: str, example: Any) -> tuple[list[str], list[Any]]:
    import torch

    if isinstance(example, torch.Tensor):
        return ["input_0"], [example]
    if isinstance(example, Mapping):
        return list(example), list(example.values())
    if isinstance(example, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in example):
        return [f"input_{i}" for i in range(len(example))], list(example)
    raise ModelSourceError(f"factory '{ref}': example inputs must be a tensor, a tuple of tensors or a dict of tensors")


def _spec_from_example(name: str, tensor: Any) -> TensorSpec:
    dtype = TORCH_TO_NUMPY.get(str(tensor.dtype))
    if dtype is None:
        raise ModelSourceError(f"example input '{name}' has dtype {tensor.dtype}, which hwfit cannot feed")
    shape = (BATCH,) + tuple(int(d) for d in tensor.shape[1:])
    if dtype in ("int64", "int32"):
        high = int(tensor.max().item()) + 1 if tensor.numel() else 2
        return TensorSpec(name, dtype, shape, fill="token_ids", low=0, high=max(high, 2))
    return TensorSpec(name, dtype, shape)


def _output_names(module: Any, example: list[Any]) -> tuple[str, ...]:
    import torch

    with torch.inference_mode():
        result = module(*example)
    count = len(result) if isinstance(result, (tuple, list)) else 1
    return tuple(f"output_{i}" for i in range(count))


def from_huggingface_folder(path: Path) -> Model:
    """A local Hugging Face folder: sentence-transformers layout (pooled) or a plain encoder."""
    from hwfit.models.builtins.text_encoder import text_encoder_model

    if not (path / "config.json").exists():
        raise ModelSourceError(
            f"{path} is a folder without config.json: expected a local Hugging Face model folder "
            "(config.json, weights, tokenizer files)"
        )
    return text_encoder_model(path, name=path.name, source=str(path), kind="huggingface")


class _Eval:
    """Callable wrapper so an ExportedProgram module runs in eval mode under the Model protocol."""

    def __init__(self, module):
        self.module = module

    def __call__(self, *args):
        return self.module(*args)

    def state_dict(self):
        return self.module.state_dict()

    def eval(self):
        return self

    def to(self, *args, **kwargs):
        self.module = self.module.to(*args, **kwargs)
        return self

"""Models: sources (ONNX, TorchScript, torch.export, module:factory, Hugging Face, built-ins),
input specs, synthetic and real inputs, FLOP and byte counts, and judging outputs."""

from hwfit.models.builtins import BUILTINS, DEFAULT_MODEL, builtin_status
from hwfit.models.builtins.cnn import cnn_architecture, digits_split
from hwfit.models.cost import ModelCost, output_shapes
from hwfit.models.model import EvalSet, Model, outputs_to_numpy, torch_inputs
from hwfit.models.onnx_graph import ONNX_TO_NUMPY
from hwfit.models.quality import (
    TOLERANCES,
    Agreement,
    compare_outputs,
    default_accuracy_loss,
    evaluate_accuracy,
    within_tolerance,
)
from hwfit.models.sources import load_model
from hwfit.models.spec import BATCH, InputSpec, TensorSpec, parse_shape_overrides, validate_inputs
from hwfit.models.synthetic import synthetic_inputs

__all__ = [
    "BATCH",
    "BUILTINS",
    "DEFAULT_MODEL",
    "TOLERANCES",
    "Agreement",
    "EvalSet",
    "InputSpec",
    "ONNX_TO_NUMPY",
    "Model",
    "ModelCost",
    "TensorSpec",
    "builtin_status",
    "cnn_architecture",
    "compare_outputs",
    "digits_split",
    "default_accuracy_loss",
    "evaluate_accuracy",
    "load_model",
    "output_shapes",
    "outputs_to_numpy",
    "parse_shape_overrides",
    "synthetic_inputs",
    "torch_inputs",
    "validate_inputs",
    "within_tolerance",
]

"""The Model noun: where a model came from, its inputs, its ONNX and PyTorch forms, and how to judge outputs."""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwfit.core import ModelSourceError, VariantUnavailable, cache_dir
from hwfit.models.spec import BATCH, InputSpec
from hwfit.models.synthetic import synthetic_inputs

if TYPE_CHECKING:  # cost imports nothing from here at run time; this is for the annotation only
    from hwfit.models.cost import ModelCost

ONNX_OPSET = 17


@dataclass(frozen=True)
class EvalSet:
    """A labelled evaluation set: inputs batched along axis 0 and integer labels."""

    name: str
    inputs: Mapping[str, np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Model:
    """A model hwfit can run: at least one of an ONNX file or a PyTorch module factory.

    `task` decides how outputs are judged: `embedding` (cosine to the reference),
    `classification` (top-1 agreement, accuracy on the eval set), or `generic` (max abs error).
    """

    name: str
    source: str  # what the user gave: a built-in name, a path, or package.module:factory
    kind: str  # builtin | onnx | torchscript | torch-export | factory | huggingface
    inputs: InputSpec
    output_names: tuple[str, ...]
    content_hash: str
    task: str = "generic"
    description: str = ""
    onnx_file: Path | None = None
    module_factory: Callable[[], Any] | None = None  # returns a torch.nn.Module in eval mode
    eval_set_factory: Callable[[], EvalSet] | None = None
    # Real inputs (tokenized sentences, held-out images) for accuracy checks and int8 calibration:
    # random token ids exaggerate quantization error, so real data gives the honest figure.
    real_inputs_factory: Callable[[int], dict[str, np.ndarray]] | None = None
    _module: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _costs: dict = field(default_factory=dict, repr=False)  # explicit cache: batch size -> ModelCost

    @property
    def has_torch(self) -> bool:
        return self.module_factory is not None

    @property
    def has_onnx(self) -> bool:
        return self.onnx_file is not None or self.module_factory is not None

    def torch_module(self) -> Any:
        """The PyTorch module (loaded once), or VariantUnavailable if this model is ONNX-only."""
        if self.module_factory is None:
            raise VariantUnavailable(f"model '{self.name}' is an ONNX file: PyTorch backends need a PyTorch model")
        with self._lock:
            if self._module is None:
                self._module = self.module_factory()
        return self._module

    def onnx_path(self) -> Path:
        """The ONNX file: the source itself, or an export of the PyTorch module cached by content hash."""
        if self.onnx_file is not None:
            return self.onnx_file
        target = cache_dir("onnx") / f"{_safe(self.name)}-{self.content_hash[:16]}.onnx"
        if not target.exists():
            export_onnx(self, target)
        return target

    def synthetic_inputs(self, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
        return synthetic_inputs(self.inputs, batch_size, seed)

    def sample_inputs(self, count: int, seed: int = 0) -> tuple[dict[str, np.ndarray], str]:
        """`count` samples of real data where the model has some, else synthetic; and which it is."""
        if self.real_inputs_factory is not None:
            return self.real_inputs_factory(count), "real"
        if self.eval_set_factory is not None:
            dataset = self.eval_set()
            if len(dataset) >= count:
                return {name: array[:count] for name, array in dataset.inputs.items()}, f"real ({dataset.name})"
        return self.synthetic_inputs(count, seed), "synthetic"

    def eval_set(self) -> EvalSet | None:
        return None if self.eval_set_factory is None else self.eval_set_factory()

    def cost(self, batch_size: int) -> ModelCost:
        """FLOPs and minimum bytes of one batch, counted from the ONNX graph (cached per batch size)."""
        from hwfit.models.cost import onnx_cost

        if batch_size not in self._costs:
            inputs = self.synthetic_inputs(batch_size)
            shapes = {name: array.shape for name, array in inputs.items()}
            input_bytes = sum(array.nbytes for array in inputs.values())
            self._costs[batch_size] = onnx_cost(self.onnx_path(), shapes, input_bytes)
        return self._costs[batch_size]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "kind": self.kind,
            "task": self.task,
            "content_hash": self.content_hash,
            "inputs": self.inputs.to_dict(),
            "outputs": list(self.output_names),
            "has_torch": self.has_torch,
        }


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def hash_bytes_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_module(module: Any) -> str:
    """Content hash of a torch module: its class and every parameter and buffer."""
    import torch

    digest = hashlib.sha256(type(module).__qualname__.encode())
    for key, tensor in module.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def torch_inputs(model: Model, inputs: Mapping[str, np.ndarray], device: str = "cpu") -> tuple:
    """Numpy inputs to torch tensors in the model's input order (the module's positional order)."""
    import torch

    return tuple(torch.from_numpy(np.ascontiguousarray(inputs[name])).to(device) for name in model.inputs.names)


def outputs_to_numpy(model: Model, result: Any) -> dict[str, np.ndarray]:
    """A module's result (tensor, tuple, or dict) to {output name: float32/int array}."""
    if isinstance(result, Mapping):
        values = [result[name] for name in model.output_names]
    elif isinstance(result, (tuple, list)):
        values = list(result)
    else:
        values = [result]
    if len(values) != len(model.output_names):
        raise ModelSourceError(
            f"model '{model.name}' returned {len(values)} output(s); expected {list(model.output_names)}"
        )
    arrays = {}
    for name, value in zip(model.output_names, values):
        tensor = value.detach()
        if tensor.dtype.is_floating_point:
            tensor = tensor.float()
        arrays[name] = tensor.cpu().numpy()
    return arrays


def export_onnx(model: Model, target: Path) -> None:
    """Export the PyTorch module to ONNX with every dynamic dim of the spec marked dynamic."""
    import torch

    module = model.torch_module()
    example = torch_inputs(model, model.synthetic_inputs(2))
    dynamic_axes = {
        spec.name: {axis: dim for axis, dim in enumerate(spec.shape) if isinstance(dim, str)}
        for spec in model.inputs.tensors
    }
    for name in model.output_names:
        dynamic_axes[name] = {0: BATCH}
    tmp = target.with_suffix(".tmp.onnx")
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                example,
                str(tmp),
                input_names=list(model.inputs.names),
                output_names=list(model.output_names),
                dynamic_axes=dynamic_axes,
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
    except Exception as error:  # the exporter raises many types; the user needs the reason
        tmp.unlink(missing_ok=True)
        raise ModelSourceError(f"could not export model '{model.name}' to ONNX: {error}") from error
    tmp.replace(target)

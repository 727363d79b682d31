"""What is trained: a `Workload` (model, optimizer, loss, data) from a built-in or a user's factory.

The factory contract (`package.module:factory`, see examples/train_factory.py): a function that
takes no arguments and returns a dict with
  - "model": a torch.nn.Module;
  - "optimizer": a torch.optim.Optimizer over that model's parameters;
  - "loss_fn": a callable `loss_fn(outputs, targets) -> scalar tensor`;
  - "data": a torch Dataset of `(inputs, targets)` items, or a DataLoader yielding `(inputs, targets)`;
  - optionally "batch_size" (int, for a Dataset; default 32) and "tokens_per_sample" (int, for tokens/s).
hwfit calls `model(inputs)` and `loss_fn(outputs, targets)`; every experiment calls the factory afresh
after seeding torch, so the model starts from the same weights and the data comes in the same order.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hwfit.train.errors import FactoryError

DEFAULT_BATCH_SIZE = 32


@dataclass
class Workload:
    """One training setup, as a factory (or a built-in) returned it."""

    name: str
    model: Any
    optimizer: Any
    loss_fn: Callable[[Any, Any], Any]
    dataset: Any  # a map-style or iterable Dataset
    batch_size: int
    collate_fn: Callable | None = None
    loader_given: bool = False  # the factory gave a DataLoader (its dataset and batch size are reused)
    tokens_per_sample: int | None = None
    description: str = ""

    @property
    def is_conv(self) -> bool:
        from torch import nn

        return any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) for m in self.model.modules())


def load_workload(target: str) -> Workload:
    """A built-in name (`lm`, `cnn`, `cnn-slow-data`) or `package.module:factory`."""
    if target in BUILTINS:
        return BUILTINS[target]()
    if ":" not in target:
        raise FactoryError(
            f"unknown training target {target!r}: expected a built-in ({', '.join(BUILTINS)}) "
            "or package.module:factory (see examples/train_factory.py)"
        )
    return _from_factory(target)


def _from_factory(ref: str) -> Workload:
    module_name, _, attr = ref.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise FactoryError(
            f"cannot import training factory {ref!r}: {error}; expected package.module:function on the Python path"
        ) from error
    try:
        made = factory()
    except Exception as error:
        raise FactoryError(f"training factory {ref!r} raised {type(error).__name__}: {error}") from error
    return workload_from(made, ref)


def workload_from(made: Any, name: str) -> Workload:
    """Check what a factory returned against the contract; a FactoryError names what is wrong."""
    import torch
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    expected = "a dict with model, optimizer, loss_fn and data (see examples/train_factory.py)"
    if not isinstance(made, dict):
        raise FactoryError(f"training factory {name!r} returned {type(made).__name__}; expected {expected}")
    missing = [key for key in ("model", "optimizer", "loss_fn", "data") if key not in made]
    if missing:
        absent = ", ".join(missing)
        raise FactoryError(f"training factory {name!r} returned a dict without {absent}; expected {expected}")
    model, optimizer, loss_fn, data = made["model"], made["optimizer"], made["loss_fn"], made["data"]
    if not isinstance(model, torch.nn.Module):
        raise FactoryError(f"{name!r}: 'model' is {type(model).__name__}; expected a torch.nn.Module")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise FactoryError(f"{name!r}: 'optimizer' is {type(optimizer).__name__}; expected a torch.optim.Optimizer")
    model_params = {id(p) for p in model.parameters()}
    optimized = [p for group in optimizer.param_groups for p in group["params"]]
    if not optimized or any(id(p) not in model_params for p in optimized):
        raise FactoryError(
            f"{name!r}: the optimizer's parameters are not the model's; build it as "
            "torch.optim.AdamW(model.parameters(), ...) from the same model you return"
        )
    if not callable(loss_fn):
        raise FactoryError(f"{name!r}: 'loss_fn' is {type(loss_fn).__name__}; expected loss_fn(outputs, targets)")
    batch_size = made.get("batch_size", DEFAULT_BATCH_SIZE)
    collate_fn = None
    loader_given = isinstance(data, DataLoader)
    if loader_given:
        if data.batch_size is None:
            raise FactoryError(f"{name!r}: its DataLoader has batch_size=None (a batch sampler); pass the Dataset")
        batch_size, collate_fn, data = data.batch_size, data.collate_fn, data.dataset
    if not isinstance(data, (Dataset, IterableDataset)) and not hasattr(data, "__getitem__"):
        raise FactoryError(f"{name!r}: 'data' is {type(data).__name__}; expected a torch Dataset or DataLoader")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise FactoryError(f"{name!r}: 'batch_size' is {batch_size!r}; expected a positive integer")
    tokens = made.get("tokens_per_sample")
    return Workload(
        name=name,
        model=model,
        optimizer=optimizer,
        loss_fn=loss_fn,
        dataset=data,
        batch_size=batch_size,
        collate_fn=collate_fn,
        loader_given=loader_given,
        tokens_per_sample=int(tokens) if tokens else None,
        description=str(made.get("description", "")),
    )


# --- built-ins ----------------------------------------------------------------------------------

LM_CONTEXT = 64
LM_WIDTH = 128
LM_LAYERS = 2
LM_HEADS = 4
LM_BATCH = 8
# Text that ships with every Python: the source of a few standard-library modules (no downloads).
LM_TEXT_MODULES = ("argparse", "textwrap", "json.decoder", "string", "csv")


def _text_bytes() -> bytes:
    parts = [inspect.getsource(importlib.import_module(name)) for name in LM_TEXT_MODULES]
    return "\n".join(parts).encode("utf-8")


class _TokenWindows:
    """Byte-level windows of `context + 1` tokens over a text: inputs are the first `context`, targets
    the next token of each."""

    def __init__(self, data: bytes, context: int) -> None:
        import torch

        self.tokens = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
        self.context = context

    def __len__(self) -> int:
        return (len(self.tokens) - 1) // self.context

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        start = index * self.context
        window = self.tokens[start : start + self.context + 1]
        return window[:-1], window[1:]


def _lm_module() -> Any:
    import torch
    from torch import nn

    class TinyLM(nn.Module):
        """A decoder-only transformer over bytes: embedding, `LM_LAYERS` causal blocks, a head."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(256, LM_WIDTH)
            self.position = nn.Parameter(torch.zeros(LM_CONTEXT, LM_WIDTH))
            self.blocks = nn.ModuleList(
                nn.TransformerEncoderLayer(
                    LM_WIDTH, LM_HEADS, 4 * LM_WIDTH, dropout=0.0, batch_first=True, norm_first=True
                )
                for _ in range(LM_LAYERS)
            )
            self.norm = nn.LayerNorm(LM_WIDTH)
            self.head = nn.Linear(LM_WIDTH, 256)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            length = tokens.shape[1]
            x = self.embed(tokens) + self.position[:length]
            mask = nn.Transformer.generate_square_subsequent_mask(length, device=tokens.device)
            for block in self.blocks:
                x = block(x, src_mask=mask, is_causal=True)
            return self.head(self.norm(x))

    return TinyLM()


def _lm_loss(logits: Any, targets: Any) -> Any:
    import torch

    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


def builtin_lm() -> Workload:
    """A 2-block byte-level transformer LM on the standard library's own source text."""
    import torch

    model = _lm_module()
    return Workload(
        name="lm",
        model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3),
        loss_fn=_lm_loss,
        dataset=_TokenWindows(_text_bytes(), LM_CONTEXT),
        batch_size=LM_BATCH,
        tokens_per_sample=LM_CONTEXT,
        description=(
            f"byte-level transformer LM ({LM_LAYERS} blocks, width {LM_WIDTH}, context {LM_CONTEXT}) on the source "
            f"of Python's {', '.join(LM_TEXT_MODULES)} modules"
        ),
    )


def _digits_dataset(delay_s: float = 0.0) -> Any:
    import torch
    from torch.utils.data import Dataset

    from hwfit.models import digits_split

    train_x, _, train_y, _ = digits_split()
    images, labels = torch.from_numpy(train_x), torch.from_numpy(train_y)

    class Digits(Dataset):
        """scikit-learn's digits; with `delay_s`, each item takes that long to prepare (a slow disk,
        a remote store, decoding: the wait is I/O-like, so loader workers overlap it)."""

        def __len__(self) -> int:
            return len(images)

        def __getitem__(self, index: int) -> tuple[Any, Any]:
            if delay_s:
                time.sleep(delay_s)
            return images[index], labels[index]

    return Digits()


def builtin_cnn(delay_s: float = 0.0, name: str = "cnn") -> Workload:
    import torch

    from hwfit.models import cnn_architecture

    model = cnn_architecture()
    description = "2-conv CNN on scikit-learn's digits (8x8, 1,437 training images)"
    if delay_s:
        description += f"; each item takes {delay_s * 1e3:.0f} ms to prepare (a deliberately data-starved loader)"
    return Workload(
        name=name,
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=2e-3),
        loss_fn=torch.nn.functional.cross_entropy,
        dataset=_digits_dataset(delay_s),
        batch_size=64,
        description=description,
    )


SLOW_ITEM_S = 0.002

BUILTINS: dict[str, Callable[[], Workload]] = {
    "lm": builtin_lm,
    "cnn": builtin_cnn,
    "cnn-slow-data": lambda: builtin_cnn(SLOW_ITEM_S, "cnn-slow-data"),
}

"""Training factories the tests import by name (`tests.train.factories:...`), also from spawned processes."""

import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

SLOW_ITEM_S = 0.01  # 16 items: 160 ms of loader time per step against well under a millisecond of compute


def _data(count: int = 256, width: int = 16):
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(count, width, generator=generator)
    targets = (inputs.sum(dim=1) > 0).long()
    return inputs, targets


class SlowItems(Dataset):
    """A dataset whose items take SLOW_ITEM_S each to prepare (a slow disk or remote store)."""

    def __init__(self) -> None:
        self.inputs, self.targets = _data()

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int):
        time.sleep(SLOW_ITEM_S)
        return self.inputs[index], self.targets[index]


class Broken(Dataset):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int):
        raise ValueError(f"cannot decode item {index}")


def _tiny(width: int = 16):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(width, 32), nn.ReLU(), nn.Linear(32, 2))


def tiny():
    """A two-layer MLP on in-memory tensors: fast data, the contract's simplest form."""
    model = _tiny()
    return {
        "model": model,
        "optimizer": torch.optim.AdamW(model.parameters(), lr=1e-2),
        "loss_fn": nn.functional.cross_entropy,
        "data": TensorDataset(*_data()),
        "batch_size": 16,
    }


def compute_heavy():
    """Fast data, a model with real work per step: compute-bound."""
    torch.manual_seed(0)
    # ~25 MFLOP a sample against a loader that only indexes and collates: the data share stays far below
    # the 25% data-bound line even on a loaded machine (at 4 x 256 wide it sat at 26% in one CI run)
    hidden = [layer for _ in range(3) for layer in (nn.Linear(1024, 1024), nn.ReLU())]
    model = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), *hidden, nn.Linear(1024, 2))
    inputs = torch.randn(512, 256, generator=torch.Generator().manual_seed(1))
    targets = (inputs.sum(dim=1) > 0).long()
    return {
        "model": model,
        "optimizer": torch.optim.SGD(model.parameters(), lr=1e-2),
        "loss_fn": nn.functional.cross_entropy,
        "data": DataLoader(TensorDataset(inputs, targets), batch_size=128),
    }


def starved():
    model = _tiny()
    return {
        "model": model,
        "optimizer": torch.optim.AdamW(model.parameters(), lr=1e-2),
        "loss_fn": nn.functional.cross_entropy,
        "data": SlowItems(),
        "batch_size": 16,
    }


def broken_loader():
    return {**tiny(), "data": Broken()}


def nan_loss():
    made = tiny()
    made["loss_fn"] = lambda outputs, targets: nn.functional.cross_entropy(outputs, targets) * float("nan")
    return made


def not_a_dict():
    return _tiny(), torch.optim.SGD(_tiny().parameters(), lr=0.1)


def foreign_optimizer():
    made = tiny()
    made["optimizer"] = torch.optim.SGD(_tiny().parameters(), lr=0.1)
    return made


class ManyItems(Dataset):
    """A million small items computed from their index: batches as large as a GPU test needs."""

    def __len__(self) -> int:
        return 1_000_000

    def __getitem__(self, index: int):
        return torch.full((16,), (index % 7) / 7.0), index % 2


def wide():
    """A 65,536-wide hidden layer: at batch 400,000 one activation is 105 GB, beyond any single GPU."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 65536), nn.ReLU(), nn.Linear(65536, 2))
    return {
        "model": model,
        "optimizer": torch.optim.SGD(model.parameters(), lr=1e-3),
        "loss_fn": nn.functional.cross_entropy,
        "data": ManyItems(),
        "batch_size": 64,
    }

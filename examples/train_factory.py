"""An example training factory for `hwfit train profile|advise examples.train_factory:make`.

The contract: a function with no arguments returning a dict with
  model      a torch.nn.Module                               (hwfit calls model(inputs))
  optimizer  a torch.optim.Optimizer over model.parameters()
  loss_fn    loss_fn(outputs, targets) -> scalar tensor
  data       a Dataset of (inputs, targets) items, or a DataLoader yielding (inputs, targets)
  batch_size optional, for a Dataset (default 32); a DataLoader brings its own
  tokens_per_sample optional, for tokens/s
hwfit seeds torch before calling it (every experiment starts from the same weights) and shuffles the
data with a fixed seed (every experiment sees the same batches in the same order).

Run from the folder that holds `examples/`:
    hwfit train profile examples.train_factory:make --steps 30
    hwfit train advise examples.train_factory:make
"""

import torch
from torch import nn
from torch.utils.data import TensorDataset


def make() -> dict:
    from sklearn.datasets import load_diabetes  # ships with scikit-learn: no download

    features, target = load_diabetes(return_X_y=True)
    inputs = torch.tensor(features, dtype=torch.float32)
    targets = torch.tensor(target, dtype=torch.float32).unsqueeze(1)
    targets = (targets - targets.mean()) / targets.std()
    model = nn.Sequential(nn.Linear(inputs.shape[1], 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 1))
    return {
        "model": model,
        "optimizer": torch.optim.AdamW(model.parameters(), lr=1e-3),
        "loss_fn": nn.functional.mse_loss,
        "data": TensorDataset(inputs, targets),
        "batch_size": 32,
    }

"""Your own training loop, profiled with hwfit's StepProfiler: the three added lines are marked.

python examples/train_loop.py
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hwfit.train import StepProfiler  # 1: import

model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 10))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
data = TensorDataset(torch.randn(4096, 64), torch.randint(0, 10, (4096,)))
loader = DataLoader(data, batch_size=64, shuffle=True)

prof = StepProfiler(device="cpu", enabled=True)  # 2: one profiler (enabled=False costs next to nothing)
batches = iter(loader)
for _ in range(30):
    with prof.data():  # 3: a phase around each part of the step, and prof.step() at its end
        inputs, targets = next(batches)
    with prof.forward():
        loss = nn.functional.cross_entropy(model(inputs), targets)
    with prof.backward():
        loss.backward()
    with prof.optimizer():
        optimizer.step()
        optimizer.zero_grad()
    prof.step(samples=len(inputs))

breakdown = prof.breakdown()
print({name: f"{ms:.2f} ms" for name, ms in breakdown.to_dict()["phases_ms"].items()})
print(breakdown.diagnosis(), f"- {breakdown.samples_per_s:.0f} samples/s")

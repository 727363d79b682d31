"""A small CNN trained at first use on scikit-learn's digits, cached, so accuracy after
quantization is a real number measured on a held-out split. The split is cached beside the
weights: where both are in the cache, scikit-learn is not needed (a GPU machine that carries the
cache, bench/gpu_check.sh)."""

from __future__ import annotations

import numpy as np

from hwfit.core import cache_dir
from hwfit.models.model import EvalSet, Model, hash_module
from hwfit.models.spec import BATCH, InputSpec, TensorSpec

SEED = 0
EPOCHS = 40
TEST_FRACTION = 0.2
WEIGHTS_VERSION = "v1"  # bump when the architecture or training recipe changes


def cnn_unavailable_reason() -> str | None:
    try:
        import torch  # noqa: F401 - imported only to check that it is installed and imports
    except ImportError as error:
        return f"{error.name} is not installed: pip install 'hwfit[cnn,torch]'"
    if _split_path().exists():
        return None
    try:
        import sklearn  # noqa: F401 - imported only to check that it is installed and imports
    except ImportError as error:
        return f"{error.name} is not installed (and no cached digits split): pip install 'hwfit[cnn,torch]'"
    return None


def _split_path():
    return cache_dir("builtins") / f"digits-split-seed{SEED}-test{TEST_FRACTION}.npz"


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits scaled to [0, 1], split 80/20 with a fixed seed; cached."""
    path = _split_path()
    if path.exists():
        with np.load(path) as cached:
            return cached["train_x"], cached["test_x"], cached["train_y"], cached["test_y"]
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    train_x, test_x, train_y, test_y = train_test_split(
        images, digits.target.astype(np.int64), test_size=TEST_FRACTION, random_state=SEED, stratify=digits.target
    )
    tmp = path.with_name(path.stem + ".partial.npz")
    np.savez_compressed(tmp, train_x=train_x, test_x=test_x, train_y=train_y, test_y=test_y)
    tmp.replace(path)
    return train_x, test_x, train_y, test_y


def cnn_architecture():
    """The CNN's layers, freshly initialised with the fixed seed (the training layer trains it from here)."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def _train(train_x: np.ndarray, train_y: np.ndarray):
    import torch

    model = cnn_architecture()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = torch.from_numpy(train_x), torch.from_numpy(train_y)
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
    return model.eval()


def _trained_module():
    """Train once, then load from the cache: a few seconds on a CPU the first time."""
    import torch

    path = cache_dir("builtins") / f"cnn-digits-{WEIGHTS_VERSION}.pt"
    model = cnn_architecture()
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    train_x, _, train_y, _ = digits_split()
    model = _train(train_x, train_y)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model


def _eval_set() -> EvalSet:
    _, test_x, _, test_y = digits_split()
    return EvalSet("digits-test", {"image": test_x}, test_y)


def _training_images(count: int) -> dict[str, np.ndarray]:
    """Real images from the training split (calibration never sees the held-out test split)."""
    train_x = digits_split()[0]
    return {"image": np.resize(train_x, (count,) + train_x.shape[1:])}


def load_cnn() -> Model:
    module = _trained_module()
    return Model(
        name="cnn",
        source="cnn",
        kind="builtin",
        inputs=InputSpec((TensorSpec("image", "float32", (BATCH, 1, 8, 8), fill="uniform", low=0.0, high=1.0),)),
        output_names=("logits",),
        content_hash=hash_module(module),
        task="classification",
        description="2-conv CNN trained on sklearn digits (8x8, 10 classes); eval: 360 held-out images",
        module_factory=lambda: module,
        eval_set_factory=_eval_set,
        real_inputs_factory=_training_images,
    )

"""The built-in classifiers used by ``fit(X, y)`` valuers: logistic regression and a one-hidden-layer MLP.

Both end in an ``nn.Linear`` head (so the CHG last-layer gradient is defined) and train with Adam on full
in-memory float32 tensors; training is seeded through an explicit generator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.validation import check_choice

__all__ = ["MODELS", "build_classifier", "train_epoch", "to_tensors"]

MODELS = ("logreg", "mlp")


def build_classifier(kind: str, n_features: int, n_classes: int, hidden: int = 64, seed: int = 0) -> nn.Module:
    """``logreg``: Linear(D, K); ``mlp``: Linear(D, hidden) → ReLU → Linear(hidden, K). Seeded init."""
    check_choice(kind, "model", MODELS, owner="build_classifier")
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        if kind == "logreg":
            model: nn.Module = nn.Sequential(nn.Linear(n_features, n_classes))
        else:
            model = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
    finally:
        torch.random.set_rng_state(gen_state)
    return model


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, X: torch.Tensor, y: torch.Tensor, batch_size: int,
                gen: torch.Generator, on_batch: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> float:
    """One shuffled epoch of mean cross-entropy; returns the mean training loss. ``on_batch(logits, idx)`` is
    called after each forward (used by in-run valuation)."""
    model.train()
    perm = torch.randperm(len(X), generator=gen)
    total = 0.0
    for start in range(0, len(X), batch_size):
        idx = perm[start:start + batch_size]
        logits = model(X[idx])
        if on_batch is not None:
            on_batch(logits, idx)
        loss = F.cross_entropy(logits, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(idx)
    return total / len(X)


def to_tensors(X: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)

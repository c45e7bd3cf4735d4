"""The built-in classifiers used by ``fit(X, y)`` valuers: logistic regression and a one-hidden-layer MLP.

Both end in an ``nn.Linear`` head (so the CHG last-layer gradient is defined) and train with Adam on full
in-memory float32 tensors; training is seeded through an explicit generator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.validation import check_choice

__all__ = ["MODELS", "Adam", "build_classifier", "train_epoch", "to_tensors"]

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


class Adam:
    """Adam (Kingma & Ba 2015) exactly as ``torch.optim.Adam``'s single-tensor path with its defaults
    (betas (0.9, 0.999), eps 1e-8, L2 ``weight_decay`` added to the gradient, no amsgrad), in plain tensor ops.

    Why not ``torch.optim.Adam``: constructing any ``torch.optim`` optimizer imports ``torch._dynamo`` (about
    1.5-4 s, once per process), which was most of the cost of the first ``CHGValuation().fit``. The built-in
    models are tiny, so this loop is as fast; ``torch.optim.Adam`` is its oracle in the tests. Per step, with
    g = ∇ + λθ::

        m ← β1·m + (1 − β1)·g        v ← β2·v + (1 − β2)·g²
        θ ← θ − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.t = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        step_size = self.lr / (1 - b1**self.t)
        bc2_sqrt = (1 - b2**self.t) ** 0.5
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = p.grad if self.weight_decay == 0 else p.grad.add(p, alpha=self.weight_decay)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m, (v.sqrt() / bc2_sqrt).add_(self.eps), value=-step_size)


def train_epoch(model: nn.Module, opt: Adam | torch.optim.Optimizer, X: torch.Tensor, y: torch.Tensor, batch_size: int,
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

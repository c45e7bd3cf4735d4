"""Cheap baselines from one training trajectory: random, loss, EL2N, GraNd and forgetting events.

All train the same built-in classifier as :class:`~lumos.valuation.CHGValuation` (Adam, shuffled epochs) and
read per-sample statistics of the training points at the end of every epoch. Higher value = more valuable,
so each score where "large = suspicious" is negated.

- loss: −ℓ_i of the final model.
- EL2N (Paul et al. 2021): −‖softmax − onehot‖₂, averaged over epochs.
- GraNd (Paul et al. 2021): −‖∇_last ℓ_i‖₂ = −‖g_i‖·√(1 + ‖h_i‖²) (last-layer bias + weight gradient;
  the full parameter gradient for logistic regression), averaged over epochs.
- forgetting (Toneva et al. 2019): −(number of correct → incorrect transitions between epochs); points
  never classified correctly count as ``epochs`` events (maximally forgettable).
"""

from __future__ import annotations

import numpy as np
import torch

from lumos.core.progress import track
from lumos.valuation.base import ValuationData, Valuer
from lumos.valuation.models import MODELS, Adam, build_classifier, to_tensors, train_epoch
from lumos.valuation.per_sample import last_layer_stats

__all__ = ["RandomValuer", "LossValuer", "EL2NValuer", "GraNdValuer", "ForgettingValuer", "trajectory"]


def trajectory(data: ValuationData, model: str = "logreg", hidden: int = 64, epochs: int = 10, lr: float = 0.01,
               batch_size: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """Train the built-in classifier and record per-epoch (epochs, N) loss, el2n, grand and correct."""
    X, y = to_tensors(data.X, data.y)
    net = build_classifier(model, X.shape[1], data.n_classes, hidden, seed)
    opt = Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    rows: dict[str, list[np.ndarray]] = {"loss": [], "el2n": [], "grand": [], "correct": []}
    for _ in track(range(epochs), "baseline training"):
        train_epoch(net, opt, X, y, batch_size, gen)
        net.eval()
        st = last_layer_stats(net, X, y)
        gnorm = st.g.norm(dim=1)
        rows["loss"].append(st.loss.double().numpy())
        rows["el2n"].append(gnorm.double().numpy())
        rows["grand"].append((gnorm * torch.sqrt(1.0 + st.h.square().sum(1))).double().numpy())
        rows["correct"].append((st.logits.argmax(1) == y).numpy())
    return {k: np.stack(v) for k, v in rows.items()}


class _TrajectoryValuer(Valuer):
    _constraints = {"model": MODELS, "hidden": "positive_int", "epochs": "positive_int", "lr": "positive",
                    "batch_size": "positive_int", "seed": "int"}

    def __init__(self, model: str = "logreg", hidden: int = 64, epochs: int = 10, lr: float = 0.01,
                 batch_size: int = 100, seed: int = 0) -> None:
        self.model = model
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed

    def _trajectory(self, data: ValuationData) -> dict[str, np.ndarray]:
        return trajectory(data, self.model, self.hidden, self.epochs, self.lr, self.batch_size, self.seed)


class RandomValuer(Valuer):
    """Uniform random values (the floor every method must beat)."""

    name = "random"
    _constraints = {"seed": "int"}

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _compute_values(self, *, data: ValuationData) -> np.ndarray:
        return np.random.default_rng(self.seed).random(len(data.y))


class LossValuer(_TrajectoryValuer):
    """−(cross-entropy of each training point under the final trained model)."""

    name = "loss"

    def _compute_values(self, *, data: ValuationData) -> np.ndarray:
        return -self._trajectory(data)["loss"][-1]


class EL2NValuer(_TrajectoryValuer):
    """−EL2N: the L2 norm of the error vector softmax − onehot, averaged over epochs."""

    name = "el2n"

    def _compute_values(self, *, data: ValuationData) -> np.ndarray:
        return -self._trajectory(data)["el2n"].mean(0)


class GraNdValuer(_TrajectoryValuer):
    """−GraNd: the norm of the last-layer per-sample gradient, averaged over epochs."""

    name = "grand"

    def _compute_values(self, *, data: ValuationData) -> np.ndarray:
        return -self._trajectory(data)["grand"].mean(0)


class ForgettingValuer(_TrajectoryValuer):
    """−(forgetting events): correct → incorrect transitions between epochs; never learned = ``epochs``."""

    name = "forgetting"

    def _compute_values(self, *, data: ValuationData) -> np.ndarray:
        correct = self._trajectory(data)["correct"]
        events = (correct[:-1] & ~correct[1:]).sum(0).astype(np.float64)
        events[~correct.any(0)] = correct.shape[0]
        return -events

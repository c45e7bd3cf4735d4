"""The CORDS adaptive selection baselines of the CHG paper, as samplers interchangeable with ``CHGSelector``.

Same three-line use and the same schedule (re-select when ``epoch % select_every == 0``)::

    selector = GradMatchPBSelector(train_ds, fraction=0.1, select_every=20)
    loader = DataLoader(IndexedDataset(train_ds), batch_size=128, sampler=selector)
    for epoch in range(epochs):
        selector.step(model, epoch)
        for x, y, idx in loader:
            w = selector.weights_[idx]                               # per-sample weights (GradMatch's OMP)
            loss = (w * F.cross_entropy(model(x), y, reduction="none")).sum() / w.sum()

- :class:`RandomSelector` (AdaptiveRandom): a uniform random ``budget`` points, redrawn at every selection.
- :class:`GradMatchPBSelector` (GradMatch-PB): non-negative ridge OMP over fixed mini-batches, matching the sum
  of the per-batch last-layer gradients of the training set (``target="train"``, the CORDS default) or of the
  validation set (``"valid"``); the OMP weight of a batch becomes the weight of each of its samples.
- :class:`GlisterPBSelector` (GLISTER-PB): greedy over fixed mini-batches by the one-step Taylor gain on the
  validation loss (step ``eta``); weights 1.
- :class:`GlisterSelector` (GLISTER, per sample): the same gain over single samples with stochastic greedy
  (CORDS ``GLISTERStrategy`` with ``greedy='Stochastic'``), the configuration of the CHG paper's baseline runs.
- :class:`StratifiedRandomSelector`: a uniform random sample *within each class*, with CHG's class-proportional
  budgets (:func:`lumos.valuation.selection.per_class_top` on random values) — the control that separates CHG's
  values from its class-proportional budgets.

A Sampler yields indices only, so the weights are published as ``weights_`` (N,) float64: the weight of every
selected sample, 0 elsewhere (all selectors, ``CHGSelector`` included through :func:`selection_weights`).
CORDS normalises them per mini-batch: loss = Σ w_i ℓ_i / Σ w_i, as above.

Departures from CORDS, all to keep the methods comparable at small scale: the per-batch methods pick
``round(budget / batch_size)`` batches and trim or pad (random, weight 1) to exactly ``budget`` samples (CORDS
takes ``ceil`` batches and never trims); the selection pass runs the model in eval mode, as ``CHGSelector``.
None of the three per-batch/random methods has class-proportional budgets in CORDS (``PerBatch`` selection
ignores classes), so neither do these.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler

from lumos.core.errors import LumosError
from lumos.core.registry import Registry
from lumos.core.validation import check_choice, check_dataset, check_float, check_positive_int
from lumos.valuation.selection import AdaptiveSelector, CHGSelector, per_class_top
from lumos.valuation.selection_solvers import (
    batch_last_layer_grads,
    fixed_batches,
    glister_greedy,
    glister_stochastic_greedy,
    last_layer_stats,
    omp_nonneg,
)

__all__ = ["AdaptiveSelector", "RandomSelector", "StratifiedRandomSelector", "GradMatchPBSelector",
           "GlisterPBSelector", "GlisterSelector", "SELECTORS", "make_selector", "selection_weights"]


class RandomSelector(AdaptiveSelector):
    """AdaptiveRandom (CORDS ``RandomStrategy`` in an adaptive loader): a fresh uniform sample without
    replacement of ``budget`` points at every selection; weights 1. The model is not used."""

    def _select(self, model: nn.Module, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.choice(len(self.dataset), size=self.budget, replace=False)
        return idx, np.ones(self.budget)


class _PerBatchSelector(AdaptiveSelector):
    """Shared by the per-batch methods: fixed batches of ``batch_size`` consecutive indices; the chosen batches
    (with their weights) are expanded to samples, trimmed or padded (random, weight 1) to ``budget``."""

    def __init__(self, dataset: Any, fraction: float = 0.1, select_every: int = 20, batch_size: int = 32,
                 seed: int = 0) -> None:
        self.batch_size = batch_size
        super().__init__(dataset, fraction, select_every, seed)

    def _check_params(self) -> None:
        super()._check_params()
        check_positive_int(self.batch_size, "batch_size", owner=type(self).__name__)

    @property
    def batches(self) -> list[torch.Tensor]:
        """The fixed batches: consecutive blocks of ``batch_size`` indices."""
        return fixed_batches(len(self.dataset), self.batch_size)

    @property
    def n_batches(self) -> int:
        """Batches chosen per selection: ``round(budget / batch_size)``, at least 1, at most all."""
        return max(1, min(-(-len(self.dataset) // self.batch_size), round(self.budget / self.batch_size)))

    def _expand(self, chosen: list[int], batch_w: list[float], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        batches = self.batches
        idx = np.concatenate([batches[b].numpy() for b in chosen]) if chosen else np.zeros(0, np.int64)
        w = np.concatenate([np.full(len(batches[b]), wb) for b, wb in zip(chosen, batch_w)]) if chosen else np.zeros(0)
        idx, w = idx[:self.budget], w[:self.budget]
        short = self.budget - len(idx)
        if short > 0:
            rest = np.setdiff1d(np.arange(len(self.dataset)), idx)
            idx = np.concatenate([idx, rng.choice(rest, size=short, replace=False)])
            w = np.concatenate([w, np.ones(short)])
        return idx, w


class GradMatchPBSelector(_PerBatchSelector):
    """GradMatch-PB: OMP picks ≤ ``round(budget / batch_size)`` batches whose non-negative weighted sum of
    last-layer gradients matches the target (sum over all training batches, or over validation batches).

    Args (beyond :class:`AdaptiveSelector`):
        batch_size: size of the fixed batches.  lam: ridge λ (CORDS configs: 0.5).  eps: OMP tolerance (1e-100).
        target: ``"train"`` or ``"valid"``.  val_dataset: required for ``"valid"``.
    Attributes: batch_weights_ (n_batches,) the last OMP solution.
    """

    def __init__(self, dataset: Any, fraction: float = 0.1, select_every: int = 20, batch_size: int = 32,
                 lam: float = 0.5, eps: float = 1e-100, target: str = "train", val_dataset: Any = None,
                 seed: int = 0) -> None:
        self.lam, self.eps, self.target, self.val_dataset = lam, eps, target, val_dataset
        super().__init__(dataset, fraction, select_every, batch_size, seed)

    def _check_params(self) -> None:
        super()._check_params()
        owner = "GradMatchPBSelector"
        check_choice(self.target, "target", ("train", "valid"), owner=owner)
        if self.target == "valid":
            check_dataset(self.val_dataset, "val_dataset", owner=owner)
        check_float(self.lam, "lam", 0.0, owner=owner)
        check_float(self.eps, "eps", 0.0, owner=owner, fix="It is OMP's relative residual tolerance (CORDS: 1e-100).")

    def _select(self, model: nn.Module, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        A = batch_last_layer_grads(model, self.dataset, self.batch_size)  # (n_batches, P)
        src = A if self.target == "train" else batch_last_layer_grads(model, self.val_dataset, self.batch_size)
        b = src.sum(0)
        x = omp_nonneg(A @ A.T, A @ b, float(b @ b), self.n_batches, self.lam, self.eps)
        self.batch_weights_ = x.numpy()
        chosen = torch.nonzero(x > 0).flatten().tolist()
        return self._expand(chosen, [float(x[j]) for j in chosen], rng)


class GlisterPBSelector(_PerBatchSelector):
    """GLISTER-PB: ``round(budget / batch_size)`` batches chosen greedily by ⟨∇L_batch, ∇L_val(θ_S)⟩ (one-step
    Taylor gain with step ``eta``); weights 1.

    Args (beyond :class:`AdaptiveSelector`): batch_size; val_dataset (required); eta (CORDS: the learning rate).
    """

    def __init__(self, dataset: Any, fraction: float = 0.1, select_every: int = 20, batch_size: int = 32,
                 val_dataset: Any = None, eta: float = 0.05, seed: int = 0) -> None:
        self.val_dataset, self.eta = val_dataset, eta
        super().__init__(dataset, fraction, select_every, batch_size, seed)

    def _check_params(self) -> None:
        super()._check_params()
        check_dataset(self.val_dataset, "val_dataset", owner="GlisterPBSelector")
        check_float(self.eta, "eta", 0.0, owner="GlisterPBSelector", low_inclusive=False,
                    fix="It is the one-step size; CORDS uses the learning rate.")

    def _select(self, model: nn.Module, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        A = batch_last_layer_grads(model, self.dataset, self.batch_size)
        z, h, y = last_layer_stats(model, self.val_dataset)
        chosen = glister_greedy(A, z, h, y, self.n_batches, self.eta)
        return self._expand(chosen, [1.0] * len(chosen), rng)


def _labels(dataset: Any) -> np.ndarray:
    """(N,) int labels of a map-style dataset of (x, y, ...) (a TensorDataset's label tensor directly)."""
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None and len(tensors) >= 2:
        return np.asarray(tensors[1].detach().cpu().numpy()).astype(np.int64).reshape(-1)
    return np.asarray([int(dataset[i][1]) for i in range(len(dataset))], dtype=np.int64)


class StratifiedRandomSelector(AdaptiveSelector):
    """Class-stratified random: per class c, ``int(budget · |N_c| / N)`` points drawn uniformly (CHG's budgets,
    :func:`~lumos.valuation.selection.per_class_top` on uniform random values), padded at random to ``budget``;
    redrawn at every selection; weights 1. The model is not used."""

    def _select(self, model: nn.Module, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        labels = _labels(self.dataset)       # read at every selection: set_params may swap the dataset
        idx = per_class_top(rng.random(len(self.dataset)), labels, self.budget, rng)
        return idx, np.ones(self.budget)


class GlisterSelector(AdaptiveSelector):
    """GLISTER per sample (the CHG paper's baseline configuration): ``budget`` samples chosen by stochastic greedy
    on the one-step Taylor gain ⟨∇ℓ_i, ∇L_val(θ_S)⟩ of their last-layer gradients (step ``eta``); weights 1.

    Args (beyond :class:`AdaptiveSelector`): val_dataset (required); eta (CORDS: the learning rate); epsilon:
    stochastic greedy's ε (each round scans ⌈(N / budget) · ln(1/ε)⌉ random candidates; CORDS 0.01).
    """

    def __init__(self, dataset: Any, fraction: float = 0.1, select_every: int = 20, val_dataset: Any = None,
                 eta: float = 0.05, epsilon: float = 0.01, seed: int = 0) -> None:
        self.val_dataset, self.eta, self.epsilon = val_dataset, eta, epsilon
        super().__init__(dataset, fraction, select_every, seed)

    def _check_params(self) -> None:
        super()._check_params()
        owner = "GlisterSelector"
        check_dataset(self.val_dataset, "val_dataset", owner=owner)
        check_float(self.eta, "eta", 0.0, owner=owner, low_inclusive=False,
                    fix="It is the one-step size; CORDS uses the learning rate.")
        check_float(self.epsilon, "epsilon", 0.0, 1.0, owner=owner, low_inclusive=False, high_inclusive=False,
                    fix="It is stochastic greedy's ε (CORDS: 0.01).")

    def _select(self, model: nn.Module, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        A = batch_last_layer_grads(model, self.dataset, 1)        # (N, C + C·D): one row per sample
        z, h, y = last_layer_stats(model, self.val_dataset)
        chosen = glister_stochastic_greedy(A, z, h, y, self.budget, self.eta, rng, self.epsilon)
        return np.asarray(chosen, dtype=np.int64), np.ones(len(chosen))


#: name → selector class, with its display ``label`` and the shared ``options`` of :func:`make_selector` it takes
#: beyond fraction / select_every / seed; read by the selection study, its CLI and the demo.
SELECTORS: Registry[type[AdaptiveSelector]] = Registry(
    "selector", param="method", expects=lambda c: isinstance(c, type) and issubclass(c, AdaptiveSelector),
    expects_text="an AdaptiveSelector subclass")
SELECTORS.register("chg", CHGSelector, label="CHG", options=())
SELECTORS.register("random", RandomSelector, label="AdaptiveRandom", options=())
SELECTORS.register("stratified", StratifiedRandomSelector, label="Stratified random", options=())
SELECTORS.register("gradmatch", GradMatchPBSelector, label="GradMatch-PB", options=("batch_size", "lam"))
SELECTORS.register("glister", GlisterSelector, label="GLISTER", options=("val_dataset", "eta"))
SELECTORS.register("glister-pb", GlisterPBSelector, label="GLISTER-PB", options=("batch_size", "val_dataset", "eta"))


def make_selector(name: str, dataset: Any, *, fraction: float, select_every: int, seed: int = 0,
                  val_dataset: Any = None, batch_size: int = 32, eta: float = 0.05, lam: float = 0.5
                  ) -> AdaptiveSelector:
    """Build a registered selector with the shared options (each takes the ``options`` it registered):
    ``batch_size`` is the fixed batch of the per-batch methods, ``lam`` GradMatch's ridge λ, ``eta`` GLISTER's
    step."""
    entry = SELECTORS.entry(name)
    extra = {"batch_size": batch_size, "val_dataset": val_dataset, "eta": eta, "lam": lam}
    return entry.obj(dataset, fraction=fraction, select_every=select_every, seed=seed,
                     **{k: extra[k] for k in entry.meta["options"]})


def selection_weights(selector: Sampler[int], n: int) -> np.ndarray:
    """(n,) sample weights of a selector: its ``weights_``, or 1 on its ``indices_`` (a sampler with indices only)."""
    w = getattr(selector, "weights_", None)
    if w is not None:
        return w
    idx = getattr(selector, "indices_", None)
    if idx is None:
        raise LumosError(f"{type(selector).__name__} has not selected yet (no weights_ or indices_): call "
                         "selector.step(model, epoch) first.")
    out = np.zeros(n)
    out[idx] = 1.0
    return out

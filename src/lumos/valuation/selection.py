"""``CHGSelector``: dynamic data selection by CHG value (the paper's CORDS ``PerClassandShap`` strategy).

Every ``select_every`` epochs the selector computes the CHG vectors of all training points at the current
parameters (one no-grad pass), values them per class (α = class mean, one game per class; classes with
n ≤ 2 by definition) and keeps, per class c, the top ``int(budget·|N_c|/N)`` points (class-proportional).
The shortfall to ``budget = int(fraction·N)`` is padded with random unselected points, and the subset is
shuffled every epoch. Three lines in a training loop::

    selector = CHGSelector(train_ds, fraction=0.1, select_every=20)          # 1
    loader = DataLoader(train_ds, batch_size=128, sampler=selector)          # 2
    for epoch in range(epochs):
        selector.step(model, epoch)                                          # 3 (re-selects when due)
        for x, y in loader:
            ...
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from lumos.core.errors import LumosError, bad_param
from lumos.core.validation import (
    check_choice,
    check_dataset,
    check_nonneg_int,
    check_positive_int,
    check_probability,
)
from lumos.valuation.base import ParamsMixin
from lumos.valuation.features import VARIANTS
from lumos.valuation.tracker import CHGTracker, IndexedDataset

__all__ = ["AdaptiveSelector", "CHGSelector", "per_class_top"]


def per_class_top(values: np.ndarray, labels: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the per-class top ``int(budget·|N_c|/N)`` by value, padded at random up to ``budget``.

    Args:
        values: (N,) values (higher kept first).  labels: (N,) int classes.  budget: total size ≤ N.
    Returns:
        (budget,) int64 indices, sorted.
    """
    values, labels = np.asarray(values, dtype=np.float64), np.asarray(labels)
    n = len(values)
    if not 0 <= budget <= n:
        raise bad_param("budget", f"an integer in [0, {n}]", budget, owner="per_class_top")
    keep: list[np.ndarray] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        r = int(budget * len(members) / n)
        order = members[np.argsort(-values[members], kind="stable")]
        keep.append(order[:r])
    chosen = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
    short = budget - len(chosen)
    if short > 0:
        rest = np.setdiff1d(np.arange(n), chosen)
        chosen = np.concatenate([chosen, rng.choice(rest, size=short, replace=False)])
    return np.sort(chosen.astype(np.int64))


class AdaptiveSelector(ParamsMixin, Sampler[int]):
    """Base of every adaptive selector (CHG and the CORDS baselines in :mod:`lumos.valuation.selection_baselines`):
    the schedule, budget, per-epoch shuffling and weights; subclasses fill :meth:`_select`
    (model, rng → (indices, weights)).

    Args:
        dataset: map-style training set of ``(x, y, ...)`` (read in order by the selection pass).
        fraction: share of the data kept, in (0, 1].  select_every: re-select when ``epoch % select_every == 0``.
        seed: an int ≥ 0: padding, random draws and the per-epoch shuffle.
    Attributes:
        indices_ (budget,) selected indices, sorted; weights_ (N,) float64 sample weights (0 = not selected);
        n_selections_; budget.
    scikit-learn conventions (:class:`~lumos.valuation.base.ParamsMixin`): ``get_params``, ``set_params``
    (re-validated), ``sklearn.base.clone``, ``repr``. Every argument is checked at construction.
    """

    def __init__(self, dataset: Any, fraction: float = 0.1, select_every: int = 20, seed: int = 0) -> None:
        self.dataset = dataset
        self.fraction = fraction
        self.select_every = select_every
        self.seed = seed
        self._check_params()
        self.indices_: np.ndarray | None = None
        self.weights_: np.ndarray | None = None
        self.n_selections_ = 0
        self._epoch = 0

    def _check_params(self) -> None:
        """Validate every constructor argument (one message shape); subclasses extend it."""
        owner = type(self).__name__
        check_dataset(self.dataset, "dataset", owner=owner)
        check_probability(self.fraction, "fraction", owner=owner, open_low=True)
        check_positive_int(self.select_every, "select_every", owner=owner)
        check_nonneg_int(self.seed, "seed", owner=owner, fix="numpy and torch seeds are non-negative.")

    def _after_set_params(self) -> None:
        self._check_params()

    @property
    def budget(self) -> int:
        """Points kept per selection: ``max(1, int(fraction · N))``."""
        return max(1, int(self.fraction * len(self.dataset)))

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.n_selections_])

    def _select(self, model: nn.Module, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def step(self, model: nn.Module, epoch: int) -> bool:
        """Call at the start of every epoch; re-selects when ``epoch % select_every == 0`` (or never selected).

        Returns True when a selection was made.
        """
        self._epoch = int(epoch)
        if self.indices_ is not None and epoch % self.select_every != 0:
            return False
        self.select(model)
        return True

    def select(self, model: nn.Module) -> np.ndarray:
        """Select now, at the model's current parameters; returns the selected indices (sorted)."""
        idx, w = self._select(model, self._rng())
        order = np.argsort(idx, kind="stable")
        self.indices_ = np.asarray(idx, dtype=np.int64)[order]
        self.weights_ = np.zeros(len(self.dataset), dtype=np.float64)
        self.weights_[self.indices_] = np.asarray(w, dtype=np.float64)[order]
        self.n_selections_ += 1
        return self.indices_

    def __iter__(self) -> Iterator[int]:
        if self.indices_ is None:
            raise LumosError(f"{type(self).__name__} has not selected yet: call selector.step(model, epoch) "
                             "before iterating.")
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self._epoch)
        order = torch.randperm(len(self.indices_), generator=gen).numpy()
        return iter(self.indices_[order].tolist())

    def __len__(self) -> int:
        return self.budget


class CHGSelector(AdaptiveSelector):
    """A sampler over the top CHG-valued fraction of each class, re-selected every ``select_every`` epochs.

    Args:
        dataset: map-style dataset of ``(x, y)`` (the training set; the scoring pass reads it in order).
        fraction: share of the data kept, in (0, 1].
        select_every: re-select when ``epoch % select_every == 0`` (R in the paper; 20 there).
        variant: ``"full"`` (bias + weight last-layer gradient, the paper's selection setting) or ``"bias"``.
        batch_size: batch size of the scoring pass.  seed: padding and shuffling.
    Attributes:
        indices_: (budget,) currently selected indices; values_: (N,) last per-class CHG values;
        weights_: (N,) 1 on the selected points; n_selections_: how many selections were made.
    """

    def __init__(self, dataset: Any, fraction: float = 0.1, select_every: int = 20, variant: str = "full",
                 batch_size: int = 256, seed: int = 0) -> None:
        self.variant = variant
        self.batch_size = batch_size
        super().__init__(dataset, fraction, select_every, seed)
        self.values_: np.ndarray | None = None

    def _check_params(self) -> None:
        super()._check_params()
        check_choice(self.variant, "variant", VARIANTS, owner="CHGSelector")
        check_positive_int(self.batch_size, "batch_size", owner="CHGSelector", fix="It is the scoring pass's batch size.")

    def _select(self, model: nn.Module, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        loader = DataLoader(IndexedDataset(self.dataset), batch_size=self.batch_size, shuffle=False)
        tracker = CHGTracker(variant=self.variant, per_class=True)
        self.values_ = tracker.update(model, loader, n_samples=len(self.dataset))
        assert tracker.labels_ is not None  # update() values one epoch, which sets labels_
        idx = per_class_top(self.values_, tracker.labels_, self.budget, rng)
        return idx, np.ones(len(idx))

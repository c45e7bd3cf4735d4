"""``CHGValuation``: CHG Shapley values of training points, scikit-learn style, per epoch and averaged over epochs.

With a built-in logistic regression or MLP (the paper's protocol: at the start of every epoch, value all points
at the current parameters, then train one epoch; average)::

    val = CHGValuation(variant="bias", model="logreg", epochs=10).fit(X, y)
    val.values_, val.ranking(), val.to_csv("values.csv")

For your own PyTorch classifier, during its training, use :class:`~lumos.valuation.tracker.CHGTracker`
(``tracker.update(model, loader)`` once per epoch, or ``tracker.watch(model, n_samples)`` in-run).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lumos.core.errors import bad_param
from lumos.core.progress import track
from lumos.valuation.base import ValuationData, Valuer
from lumos.valuation.features import VARIANTS, CHGVector
from lumos.valuation.models import MODELS, Adam, build_classifier, to_tensors, train_epoch
from lumos.valuation.per_sample import capture_last_layer, check_capture
from lumos.valuation.tracker import CHGTracker, EpochBuffer

__all__ = ["CHGValuation"]

_OWNER = "CHGValuation"


class CHGValuation(Valuer):
    """CHG Shapley data valuation (x_i = ℓ_i·∇_last ℓ_i, α = mean, closed form), averaged over epochs.

    Args:
        variant: ``"bias"`` (g only: the paper's valuation code, OpenDataVal ``chgshaply.py``; the default) or
            ``"full"`` (bias + weight gradient of the last layer, [g, g⊗h]: the paper's selection code, the
            default of :class:`~lumos.valuation.CHGSelector`).
        per_class: one game per class (α = class mean) instead of one game over all points.
        alpha: target direction α: ``"train"`` (the mean training vector x̄, as in all the paper's released
            configs; fast path) or ``"valid"`` (the mean CHG vector of the validation set at the same
            parameters; :meth:`fit` only, needs ``X_val, y_val``; full Eq. 4).
        model: built-in classifier for :meth:`fit`: ``"logreg"`` or ``"mlp"``.
        hidden: MLP width.  epochs, lr, batch_size, weight_decay: Adam training of the built-in model.
        seed: seeds the built-in model's init and shuffling.
    Attributes (after fit):
        values_ (N,) float64 mean over epochs (row i of X → values_[i]); epoch_values_ list of (N,) arrays;
        n_epochs_; classes_ (K,) the sorted distinct labels of y; labels_ (N,) the labels as given;
        model_ (after fit) the trained classifier; fit_time_ seconds.
    """

    name = "chg"
    _constraints = {"variant": VARIANTS, "per_class": "bool", "alpha": ("train", "valid"), "model": MODELS,
                    "hidden": "positive_int", "epochs": "positive_int", "lr": "positive", "batch_size": "positive_int",
                    "weight_decay": "nonneg", "seed": "int"}

    def __init__(self, variant: str = "bias", per_class: bool = False, alpha: str = "train", model: str = "logreg",
                 hidden: int = 64, epochs: int = 10, lr: float = 0.01, batch_size: int = 100,
                 weight_decay: float = 0.0, seed: int = 0) -> None:
        self.variant = variant
        self.per_class = per_class
        self.alpha = alpha
        self.model = model
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.seed = seed

    def _compute_values(self, *, data: ValuationData) -> np.ndarray:
        if self.alpha == "valid" and data.X_val is None:
            raise bad_param("X_val", "a validation set (X_val, y_val) when alpha='valid'", None, owner=_OWNER,
                            fix="Pass fit(X, y, X_val, y_val), or use alpha='train'.")
        tracker = CHGTracker(self.variant, self.per_class)
        X, y = to_tensors(data.X, data.y)
        model = build_classifier(self.model, X.shape[1], data.n_classes, self.hidden, self.seed)
        opt = Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        gen = torch.Generator().manual_seed(self.seed)
        idx = torch.arange(len(X))
        for _ in track(range(self.epochs), "CHG valuation epochs"):
            model.eval()
            buf = EpochBuffer(len(X), self.variant, owner=_OWNER)
            with capture_last_layer(model, owner=_OWNER) as cap, torch.no_grad():
                z, h = check_capture(model(X), cap, y, owner=_OWNER)
            buf.add(z, h, y, idx)
            alpha = self._valid_alpha(model, data) if self.alpha == "valid" else None
            tracker.add_epoch(buf, alpha)
            train_epoch(model, opt, X, y, self.batch_size, gen)
        model.eval()
        values, labels = tracker.values_, tracker.labels_
        assert values is not None and labels is not None  # set by add_epoch; epochs >= 1 is checked at fit
        self.model_ = model
        self.epoch_values_, self.n_epochs_ = tracker.epoch_values_, tracker.n_epochs_
        self.labels_ = data.classes[labels] if data.classes is not None else labels
        return values

    def _valid_alpha(self, model: nn.Module, data: ValuationData) -> CHGVector:
        """α = mean CHG vector of the validation points at the model's current parameters (factored)."""
        Xv, yv = to_tensors(*data.validation(_OWNER))
        buf = EpochBuffer(len(Xv), self.variant, owner=_OWNER)
        with capture_last_layer(model, owner=_OWNER) as cap, torch.no_grad():
            z, h = check_capture(model(Xv), cap, yv, owner=_OWNER)
        buf.add(z, h, yv, torch.arange(len(Xv)))
        total = buf.features(torch.ones(len(Xv), dtype=torch.bool)).sum()
        return CHGVector(total.b / len(Xv), None if total.w is None else total.w / len(Xv))

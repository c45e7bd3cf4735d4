"""Evaluations of data values: label-noise injection, noisy-label detection (F1 of a 2-means split, AUC),
point-removal curves, and selection accuracy versus fraction (clean, 30% label noise, class imbalance).

Protocols follow OpenDataVal (noise always flips to a different class; F1 of the low cluster of a 1-D
2-means split of the values) and the CHG paper's CORDS settings (noise relabels uniformly at random;
imbalance cuts int(0.3·K) classes to 10% of the smallest class).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lumos.core.errors import bad_param
from lumos.core.progress import track
from lumos.valuation.data import Split, make_split

__all__ = [
    "inject_label_noise",
    "two_means_split",
    "noisy_detection_f1",
    "noisy_detection_auc",
    "default_model",
    "removal_curve",
    "make_setting",
    "SETTINGS",
    "selection_accuracy",
    "compare_methods",
    "NoisyData",
    "noisy_label_data",
    "removal_curves",
    "removal_figure",
]

SETTINGS = ("clean", "noise30", "imbalance")


def inject_label_noise(y: np.ndarray, fraction: float, n_classes: int | None = None, seed: int = 0,
                       different: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Relabel ``int(fraction·N)`` random points; returns (y_noisy copy, noisy mask (N,) bool).

    With ``different=True`` (OpenDataVal) each flipped label is a uniformly random *other* class, so the mask
    marks exactly the corrupted points; with False it is uniform over all classes (CORDS).
    """
    y = np.asarray(y, dtype=np.int64)
    if not 0 <= fraction <= 1:
        raise bad_param("fraction", "a number in [0, 1]", fraction, owner="inject_label_noise")
    k = int(n_classes) if n_classes is not None else int(y.max()) + 1
    if k < 2:
        raise bad_param("n_classes", ">= 2", k, owner="inject_label_noise")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(y), size=int(fraction * len(y)), replace=False)
    out = y.copy()
    if different:
        out[idx] = (y[idx] + rng.integers(1, k, size=len(idx))) % k
    else:
        out[idx] = rng.integers(0, k, size=len(idx))
    return out, out != y


def two_means_split(values: np.ndarray) -> np.ndarray:
    """Exact 1-D 2-means: boolean mask of the low cluster (minimum within-cluster sum of squares split)."""
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n < 2:
        return np.zeros(n, dtype=bool)
    order = np.argsort(v, kind="stable")
    s = v[order]
    c1, c2 = np.cumsum(s), np.cumsum(s * s)
    k = np.arange(1, n)  # size of the low cluster
    sse_lo = c2[k - 1] - c1[k - 1] ** 2 / k
    hi_sum, hi_sq = c1[-1] - c1[k - 1], c2[-1] - c2[k - 1]
    sse_hi = hi_sq - hi_sum**2 / (n - k)
    best = int(k[np.argmin(sse_lo + sse_hi)])
    mask = np.zeros(n, dtype=bool)
    mask[order[:best]] = True
    return mask


def noisy_detection_f1(values: np.ndarray, noisy: np.ndarray) -> float:
    """F1 of predicting "noisy" for the low cluster of a 2-means split of the values."""
    pred = two_means_split(values)
    noisy = np.asarray(noisy, dtype=bool)
    tp = int((pred & noisy).sum())
    if tp == 0:
        return 0.0
    precision, recall = tp / int(pred.sum()), tp / int(noisy.sum())
    return 2 * precision * recall / (precision + recall)


def noisy_detection_auc(values: np.ndarray, noisy: np.ndarray) -> float:
    """ROC AUC of −value as a score for "noisy" (1.0 = every noisy point valued below every clean one)."""
    from sklearn.metrics import roc_auc_score

    noisy = np.asarray(noisy, dtype=bool)
    if noisy.all() or not noisy.any():
        return float("nan")
    return float(roc_auc_score(noisy, -np.asarray(values, dtype=np.float64)))


class _Classifier(Protocol):
    """What the evaluation needs of a model: scikit-learn's ``fit(X, y)`` and ``score(X, y)`` (accuracy)."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> object: ...

    def score(self, X: np.ndarray, y: np.ndarray) -> float: ...


def default_model() -> _Classifier:
    """The evaluation classifier: scikit-learn multinomial logistic regression."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=300)


def _fit_score(model_factory: Callable[[], _Classifier], X: np.ndarray, y: np.ndarray, X_test: np.ndarray,
               y_test: np.ndarray) -> float:
    if len(y) == 0:
        return 0.0
    classes = np.unique(y)
    if len(classes) == 1:  # a single class: the model predicts it everywhere
        return float((y_test == classes[0]).mean())
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # a small model: threads only add overhead (see Valuer.fit)
        model = model_factory()
        model.fit(X, y)
        return float(model.score(X_test, y_test))


def removal_curve(values: np.ndarray, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                  fractions: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5), highest_first: bool = True,
                  model_factory: Callable[[], _Classifier] = default_model) -> list[float]:
    """Test accuracy after removing the given fractions of training points, highest (or lowest) value first."""
    order = np.argsort(-np.asarray(values) if highest_first else np.asarray(values), kind="stable")
    accs = []
    for f in fractions:
        keep = order[int(f * len(order)):]
        accs.append(_fit_score(model_factory, X[keep], y[keep], X_test, y_test))
    return accs


def make_setting(X: np.ndarray, y: np.ndarray, setting: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Training data for a selection setting: ``clean``; ``noise30`` (30% relabelled uniformly at random);
    ``imbalance`` (int(0.3·K) random classes cut to 10% of the smallest class)."""
    rng = np.random.default_rng(seed)
    if setting == "clean":
        return X, y
    if setting == "noise30":
        return X, inject_label_noise(y, 0.3, seed=seed, different=False)[0]
    if setting == "imbalance":
        k = int(y.max()) + 1
        cut = rng.choice(k, size=max(1, int(0.3 * k)), replace=False)
        keep_n = max(1, int(0.1 * np.bincount(y, minlength=k).min()))
        keep = np.ones(len(y), dtype=bool)
        for c in cut:
            members = np.flatnonzero(y == c)
            keep[rng.choice(members, size=len(members) - keep_n, replace=False)] = False
        return X[keep], y[keep]
    raise bad_param("setting", "one of " + ", ".join(SETTINGS), setting, owner="make_setting")


def selection_accuracy(values: np.ndarray, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                       fractions: Sequence[float] = (0.05, 0.1, 0.3, 0.5, 0.7), seed: int = 0,
                       model_factory: Callable[[], _Classifier] = default_model) -> list[float]:
    """Test accuracy of a model trained on the per-class top fraction by value (class-proportional)."""
    from lumos.valuation.selection import per_class_top

    accs = []
    for f in track(fractions, "selection fractions"):
        idx = per_class_top(values, y, max(1, int(f * len(y))), np.random.default_rng(seed))
        accs.append(_fit_score(model_factory, X[idx], y[idx], X_test, y_test))
    return accs


def compare_methods(methods: Sequence[str], X: np.ndarray, y_noisy: np.ndarray, noisy: np.ndarray,
                    X_val: np.ndarray, y_val: np.ndarray, params: dict[str, dict] | None = None,
                    warmup: bool = True) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Value the (noisy) training set with each method; returns (rows of method/seconds/F1/AUC, values).

    F1 and AUC are None when ``noisy`` marks no point (or every point): there is nothing to detect.

    ``params`` maps a method name to constructor keywords. With ``warmup`` a tiny fit of the torch-based
    methods runs first, so one-time library initialisation is not charged to the first method timed.
    """
    from lumos.valuation.baselines import TMCShapleyValuer, make_valuer

    params = params or {}
    if warmup:
        idx = np.concatenate([np.flatnonzero(y_noisy == c)[:5] for c in np.unique(y_noisy)])
        make_valuer("chg", epochs=1).fit(X[idx], y_noisy[idx])
    rows, values = [], {}
    noisy = np.asarray(noisy, dtype=bool)
    detectable = bool(noisy.any() and not noisy.all())  # else F1/AUC are undefined: None, never NaN or 0
    for name in methods:
        valuer = make_valuer(name, **params.get(name, {}))
        valuer.fit(X, y_noisy, X_val, y_val)
        values[name] = valuer.values_
        row = {"method": name, "seconds": round(valuer.fit_time_, 4),
               "f1": round(noisy_detection_f1(valuer.values_, noisy), 4) if detectable else None,
               "auc": round(noisy_detection_auc(valuer.values_, noisy), 4) if detectable else None}
        if isinstance(valuer, TMCShapleyValuer):  # the valuer that stops on convergence
            row["note"] = f"{valuer.n_permutations_} permutations, converged={valuer.converged_}"
        rows.append(row)
    return rows, values


@dataclass
class NoisyData:
    """The noisy-label detection setting: the split, the training labels used (``y_noisy``) and which of them
    were flipped (``noisy``, (N_train,) bool)."""

    split: Split
    y_noisy: np.ndarray
    noisy: np.ndarray


def noisy_label_data(X: np.ndarray, y: np.ndarray, *, noise: float, n_train: int | float, n_val: int | float,
                     seed: int = 0) -> NoisyData:
    """Split (:func:`~lumos.valuation.data.make_split`; sizes are counts or fractions of N) and flip ``noise``
    of the training labels to another class (:func:`inject_label_noise`): the setting of ``lumos value`` and
    the demo, valued with :func:`compare_methods`."""
    split = make_split(X, y, n_train, n_val, seed=seed)
    y_noisy, noisy = inject_label_noise(split.y_train, noise, split.n_classes, seed=seed)
    return NoisyData(split, y_noisy, noisy)


def removal_curves(values: dict[str, np.ndarray], data: NoisyData,
                   fractions: Sequence[float]) -> dict[str, dict[str, list[float]]]:
    """``{method: {"high": accs, "low": accs}}``: :func:`removal_curve` of each method's values, removing the
    highest- and the lowest-valued training points first (trained on ``data.y_noisy``, tested on the test split)."""
    s = data.split
    return {m: {k: removal_curve(v, s.X_train, data.y_noisy, s.X_test, s.y_test, fractions,
                                 highest_first=(k == "high")) for k in ("high", "low")}
            for m, v in values.items()}


def removal_figure(curves: dict[str, dict[str, list[float]]], fractions: Sequence[float]) -> object:
    """Matplotlib figure: test accuracy vs fraction removed, highest-first and lowest-first, one line per method."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, key, title in ((axes[0], "high", "remove highest value first"), (axes[1], "low", "remove lowest value first")):
        for name, c in curves.items():
            ax.plot([100 * f for f in fractions], c[key], marker="o", ms=3, label=name)
        ax.set_title(title)
        ax.set_xlabel("% of training points removed")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig

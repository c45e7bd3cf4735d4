"""The valuer contract (scikit-learn estimator style) shared by CHG and every baseline.

``__init__`` stores keyword arguments unchanged; ``fit(X, y, X_val=None, y_val=None)`` validates the data,
computes one value per training point into ``values_`` (higher = more valuable) and returns ``self``;
reading results before fitting raises :class:`NotFittedError`. Subclasses fill exactly one hole,
:meth:`Valuer._compute_values`, keyword-only, with already validated arrays.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lumos.core import validation as V
from lumos.core.errors import LumosError, bad_param
from lumos.core.io import atomic_write_text

__all__ = ["Valuer", "NotFittedError", "ValuationData", "validate_data", "write_values_csv"]


class NotFittedError(LumosError):
    """A valuer's results were read before ``fit`` (or ``update``) was called."""


@dataclass
class ValuationData:
    """Validated inputs: X (N, D) float64, y (N,) int64 in [0, K), optional validation split, K classes."""

    X: np.ndarray
    y: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    n_classes: int


def _as_X(X: Any, name: str, owner: str, d: int | None = None) -> np.ndarray:
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    try:
        arr = np.array(X, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise bad_param(name, "a numeric (N, D) array", type(X).__name__, owner=owner, type_error=True) from exc
    if arr.ndim != 2:
        raise bad_param(name, "a 2-D (N, D) array", f"shape {arr.shape}", owner=owner, fix="Reshape to (n_samples, n_features).")
    if arr.shape[0] == 0:
        raise bad_param(name, "non-empty", f"shape {arr.shape}", owner=owner, fix="Pass at least two points of two classes.")
    if d is not None and arr.shape[1] != d:
        raise bad_param(name, f"{d} features like X", f"{arr.shape[1]} features", owner=owner)
    if not np.isfinite(arr).all():
        raise bad_param(name, "finite (no NaN or inf)", f"{int((~np.isfinite(arr)).sum())} non-finite entries",
                        owner=owner, fix="Impute or drop missing values first.")
    return arr


def _as_y(y: Any, name: str, owner: str, n: int, n_classes: int | None) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise bad_param(name, f"a 1-D array of {n} labels", f"shape {arr.shape}", owner=owner)
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and np.all(arr == np.round(arr))):
        raise bad_param(name, "integer class labels", "non-integer values", owner=owner, fix="Encode classes as 0..K-1.")
    if arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
        raise bad_param(name, "integer class labels 0..K-1", str(arr.dtype), owner=owner, type_error=True)
    arr = arr.astype(np.int64)
    hi = n_classes if n_classes is not None else None
    if arr.min() < 0 or (hi is not None and arr.max() >= hi):
        rng = f"[0, {hi})" if hi is not None else "[0, K)"
        raise bad_param(name, f"labels in {rng}", f"labels in [{arr.min()}, {arr.max()}]", owner=owner,
                        fix="Encode classes as 0..K-1 (e.g. sklearn.preprocessing.LabelEncoder).")
    return arr


def validate_data(X: Any, y: Any, X_val: Any = None, y_val: Any = None, *, owner: str,
                  n_classes: int | None = None, need_val: bool = False) -> ValuationData:
    """Check and copy the inputs (never mutated) into float64/int64 arrays with one clear error each."""
    Xa = _as_X(X, "X", owner)
    ya = _as_y(y, "y", owner, Xa.shape[0], n_classes)
    if len(np.unique(ya)) < 2:
        raise bad_param("y", "labels of at least two classes", f"only class {int(ya[0])}", owner=owner,
                        fix="Valuation needs a classification problem with >= 2 classes.")
    k = int(n_classes) if n_classes is not None else int(ya.max()) + 1
    if (X_val is None) != (y_val is None):
        raise LumosError(f"{owner}: pass both X_val and y_val, or neither.")
    if X_val is None:
        if need_val:
            raise bad_param("X_val", "a validation set (X_val, y_val)", None, owner=owner,
                            fix="This method measures utility on validation data; pass X_val and y_val.")
        return ValuationData(Xa, ya, None, None, k)
    Xv = _as_X(X_val, "X_val", owner, d=Xa.shape[1])
    yv = _as_y(y_val, "y_val", owner, Xv.shape[0], k)
    return ValuationData(Xa, ya, Xv, yv, k)


def write_values_csv(path: str | Path, columns: dict[str, np.ndarray]) -> Path:
    """Write named equal-length columns as CSV atomically (an ``index`` column first)."""
    names = list(columns)
    n = len(next(iter(columns.values()))) if columns else 0
    lines = [",".join(["index", *names])]
    for i in range(n):
        cells = [str(i)]
        for name in names:
            v = columns[name][i]
            cells.append(repr(float(v)) if isinstance(v, (float, np.floating)) else str(v))
        lines.append(",".join(cells))
    return atomic_write_text(path, "\n".join(lines) + "\n")


#: Constraint kinds of :attr:`Valuer._constraints` → a check of :mod:`lumos.core.validation`.
_KINDS: dict[str, Any] = {
    "positive_int": lambda v, n, o: V.check_positive_int(v, n, owner=o),
    "nonneg_int": lambda v, n, o: V.check_nonneg_int(v, n, owner=o),
    "int": lambda v, n, o: V.check_int(v, n, owner=o),
    "positive": lambda v, n, o: V.check_float(v, n, 0.0, owner=o, low_inclusive=False),
    "positive_or_none": lambda v, n, o: V.check_float(v, n, 0.0, owner=o, low_inclusive=False, allow_none=True),
    "nonneg": lambda v, n, o: V.check_float(v, n, 0.0, owner=o),
    "probability": lambda v, n, o: V.check_probability(v, n, owner=o),
    "bool": lambda v, n, o: V.check_bool(v, n, owner=o),
}


class Valuer:
    """Base class: ``fit`` validates, times and stores ``values_`` (N,) float64; higher = more valuable.

    Every constructor argument is declared in :attr:`_constraints` (scikit-learn's ``_parameter_constraints``):
    a kind of :data:`_KINDS` or a tuple of allowed strings. ``fit`` checks them all before any work.
    """

    #: parameter name → constraint kind (see ``_KINDS``) or tuple of choices
    _constraints: dict[str, Any] = {}

    #: Whether :meth:`fit` needs ``X_val, y_val``.
    requires_validation: bool = False
    #: Short method name used in tables and CSV columns.
    name: str = "valuer"

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, as stored (scikit-learn contract)."""
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> Valuer:
        """Value every training point.

        Args:
            X: (N, D) features.  y: (N,) int labels 0..K-1 (at least two classes).
            X_val, y_val: validation split, required by utility-based methods (KNN, TMC, LOO, Data-OOB ignores it).
        Returns:
            self, with ``values_`` (N,) float64 and ``fit_time_`` seconds.
        """
        from threadpoolctl import threadpool_limits

        self._check_params()
        data = validate_data(X, y, X_val, y_val, owner=type(self).__name__, need_val=self.requires_validation)
        t0 = time.perf_counter()
        # The built-in models are tiny (thousands of refits of a logistic regression): multi-threaded BLAS/OpenMP
        # only adds synchronisation, and on a busy machine costs 10-80x. The limit is scoped and restored.
        with threadpool_limits(limits=1):
            values = np.asarray(self._compute_values(data=data), dtype=np.float64)
        self.fit_time_ = time.perf_counter() - t0
        if values.shape != (data.X.shape[0],):
            raise LumosError(f"{type(self).__name__} produced values of shape {values.shape}; expected ({data.X.shape[0]},).")
        self.values_ = values
        self.n_samples_ = data.X.shape[0]
        return self

    def _check_params(self) -> None:
        """Validate every constructor argument against :attr:`_constraints` (one message shape)."""
        owner = type(self).__name__
        for name, kind in self._constraints.items():
            value = getattr(self, name)
            if isinstance(kind, tuple):
                V.check_choice(value, name, kind, owner=owner)
            else:
                _KINDS[kind](value, name, owner)

    def _compute_values(self, *, data: ValuationData) -> np.ndarray:
        """Return (N,) values for ``data`` (validated). The one method a valuer implements."""
        raise NotImplementedError

    def _check_fitted(self) -> np.ndarray:
        values = getattr(self, "values_", None)
        if values is None:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet. Call fit(X, y) first.")
        return values

    def ranking(self) -> np.ndarray:
        """(N,) indices from most to least valuable (stable for ties)."""
        return np.argsort(-self._check_fitted(), kind="stable")

    def to_csv(self, path: str | Path, labels: Any = None) -> Path:
        """Write ``index,value,rank[,label]`` (rank 0 = most valuable) atomically."""
        values = self._check_fitted()
        rank = np.empty(len(values), dtype=np.int64)
        rank[self.ranking()] = np.arange(len(values))
        cols: dict[str, np.ndarray] = {"value": values, "rank": rank}
        if labels is not None:
            cols["label"] = np.asarray(labels)
        return write_values_csv(path, cols)

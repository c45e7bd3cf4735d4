"""The valuer contract (scikit-learn estimator style) shared by CHG and every baseline.

``__init__`` stores keyword arguments unchanged; ``fit(X, y, X_val=None, y_val=None)`` validates the data,
computes one value per training point into ``values_`` (higher = more valuable) and returns ``self``;
reading results before fitting raises :class:`NotFittedError`. Subclasses fill exactly one hole,
:meth:`Valuer._compute_values`, keyword-only, with already validated arrays.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lumos.core import validation as V
from lumos.core.errors import LumosError, bad_param
from lumos.core.io import atomic_write_text

__all__ = ["Valuer", "ParamsMixin", "NotFittedError", "ValuationData", "validate_data", "encode_labels",
           "write_values_csv"]


class NotFittedError(LumosError):
    """A valuer's results were read before ``fit`` (or ``update``) was called."""


@dataclass
class ValuationData:
    """Validated inputs: X (N, D) float64, y (N,) int64 codes in [0, K) of ``classes`` (K,) (the sorted distinct
    labels as given), optional validation split encoded with the same classes, K classes."""

    X: np.ndarray
    y: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    n_classes: int
    classes: np.ndarray | None = None

    def validation(self, owner: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X_val, y_val)``; a clear error when there is no validation split (``owner``: the method asking)."""
        if self.X_val is None or self.y_val is None:
            raise bad_param("X_val", "a validation set (X_val, y_val)", None, owner=owner,
                            fix="This method measures utility on validation data; pass X_val and y_val.")
        return self.X_val, self.y_val


def _as_X(X: Any, name: str, owner: str, d: int | None = None) -> np.ndarray:
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    try:
        arr = np.array(X, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise bad_param(name, "a numeric (N, D) array", type(X).__name__, owner=owner, type_error=True,
                        fix="Encode text columns as numbers first (lumos value one-hot encodes them).") from exc
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


def _label_array(y: Any, name: str, owner: str, n: int) -> np.ndarray:
    """``y`` as a 1-D numpy array of n labels: integers, integral floats, bools or strings (no NaN)."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    if isinstance(y, (list, tuple)):  # numpy would turn [1, "a"] into strings silently
        y = np.array(y, dtype=object) if any(isinstance(v, str) for v in y) else y
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise bad_param(name, f"a 1-D array of {n} labels", f"shape {arr.shape}", owner=owner)
    if arr.dtype.kind == "O":  # a list of Python objects: strings or ints only, never a mixture
        items = arr.tolist()
        kinds = {type(v) for v in items}
        if all(isinstance(v, str) for v in items):
            arr = arr.astype(str)
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items):
            arr = arr.astype(np.int64)
        else:
            raise bad_param(name, "class labels of one type (all strings or all integers)",
                            ", ".join(sorted(k.__name__ for k in kinds)), owner=owner, type_error=True)
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and np.all(arr == np.round(arr))):
        bad = "NaN/inf labels" if not np.isfinite(arr).all() else "non-integer values (regression targets?)"
        raise bad_param(name, "class labels (integers, strings or bools)", bad, owner=owner,
                        fix="Valuation needs a classification target; drop rows without a label.")
    if arr.dtype.kind not in "biufUS":
        raise bad_param(name, "class labels (integers, strings or bools)", str(arr.dtype), owner=owner, type_error=True)
    return arr


def encode_labels(y: Any, classes: Any = None, *, name: str = "y", owner: str = "encode_labels",
                  n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Encode class labels (ints, integral floats, bools or strings, as scikit-learn classifiers take them) as
    codes 0..K-1: returns ``(codes (N,) int64, classes (K,))`` with ``classes`` sorted (``np.unique``), so
    ``classes[codes]`` gives the labels back. With ``classes`` given (e.g. those of the training labels), every
    label must be one of them; a label outside them is a clear error, never a new code."""
    arr = _label_array(y, name, owner, len(y) if n is None else n)
    if classes is None:
        cls, codes = np.unique(arr, return_inverse=True)
        return codes.astype(np.int64).reshape(-1), cls
    cls = np.asarray(classes)
    if (arr.dtype.kind in "US") != (cls.dtype.kind in "US"):
        raise bad_param(name, f"labels of the same kind as the training labels ({cls.dtype.kind in 'US' and 'strings' or 'numbers'})",
                        str(arr.dtype), owner=owner, type_error=True)
    pos = np.searchsorted(cls, arr)
    pos = np.clip(pos, 0, len(cls) - 1)
    unknown = cls[pos] != arr
    if unknown.any():
        extra = ", ".join(repr(v) for v in np.unique(arr[unknown])[:5].tolist())
        raise bad_param(name, "labels that occur in the training labels y", f"unseen label(s) {extra}", owner=owner,
                        fix="Every validation class must have training points; drop those rows or add training data.")
    return pos.astype(np.int64), cls


def validate_data(X: Any, y: Any, X_val: Any = None, y_val: Any = None, *, owner: str,
                  n_classes: int | None = None, need_val: bool = False) -> ValuationData:
    """Check and copy the inputs (never mutated) into float64 arrays and int64 label codes, one clear error each.

    Labels may be any class labels (:func:`encode_labels`); ``n_classes`` (optional) declares int labels
    0..n_classes-1, so a class with no training point still gets a logit (and ``y`` outside the range is refused)."""
    Xa = _as_X(X, "X", owner)
    if n_classes is not None:
        ya, classes = encode_labels(y, np.arange(int(n_classes)), name="y", owner=owner, n=Xa.shape[0])
    else:
        ya, classes = encode_labels(y, name="y", owner=owner, n=Xa.shape[0])
    if len(np.unique(ya)) < 2:
        raise bad_param("y", "labels of at least two classes", f"only class {classes[ya[0]]!r}", owner=owner,
                        fix="Valuation needs a classification problem with >= 2 classes.")
    k = len(classes)
    if (X_val is None) != (y_val is None):
        raise LumosError(f"{owner}: pass both X_val and y_val, or neither.")
    if X_val is None:
        if need_val:
            raise bad_param("X_val", "a validation set (X_val, y_val)", None, owner=owner,
                            fix="This method measures utility on validation data; pass X_val and y_val.")
        return ValuationData(Xa, ya, None, None, k, classes)
    Xv = _as_X(X_val, "X_val", owner, d=Xa.shape[1])
    yv, _ = encode_labels(y_val, classes, name="y_val", owner=owner, n=Xv.shape[0])
    return ValuationData(Xa, ya, Xv, yv, k, classes)


def write_values_csv(path: str | Path, columns: dict[str, Any]) -> Path:
    """Write named equal-length columns as a CSV file atomically (RFC 4180 quoting; floats as ``repr``)."""
    import csv
    import io

    names = list(columns)
    n = len(next(iter(columns.values()))) if columns else 0
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    cols = [np.asarray(columns[k]) for k in names]
    for i in range(n):
        writer.writerow([repr(float(c[i])) if c.dtype.kind == "f" else str(c[i]) for c in cols])
    return atomic_write_text(path, buf.getvalue())


class ParamsMixin:
    """scikit-learn's ``BaseEstimator`` conventions without importing scikit-learn (about 2 s): the constructor
    stores its keyword arguments unchanged, so :meth:`get_params` reads them back, :meth:`set_params` sets
    them (``name__sub`` for nested estimators), ``sklearn.base.clone`` rebuilds an unfitted copy, and
    ``repr`` shows the arguments that differ from their defaults (sklearn's ``print_changed_only``)."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The constructor's parameter names, in signature order (no ``*args``/``**kwargs`` allowed)."""
        if cls.__init__ is object.__init__:
            return []
        names = []
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.name == "self":
                continue
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{cls.__name__}.__init__ must declare every parameter (no *args/**kwargs) for "
                                "get_params/clone.")
            names.append(p.name)
        return names

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, as stored; with ``deep``, also ``name__sub`` of nested estimators."""
        out: dict[str, Any] = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params(deep=True).items())
            out[name] = value
        return out

    def set_params(self, **params: Any) -> Any:
        """Set constructor arguments (``name__sub=value`` for nested estimators); returns ``self``. Values are
        checked where the class checks them (at :meth:`fit` for valuers, here for selectors)."""
        valid = self._get_param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, sep, sub = key.partition("__")
            if name not in valid:
                raise bad_param("set_params key", "one of " + ", ".join(valid), key, owner=type(self).__name__,
                                fix="Check the spelling against get_params().")
            if sep:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        self._after_set_params()
        return self

    def _after_set_params(self) -> None:
        """Hook: re-validate after :meth:`set_params` (selectors validate at construction)."""

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__).parameters
        shown = []
        for name in self._get_param_names():
            value, default = getattr(self, name), sig[name].default
            if default is inspect.Parameter.empty or not _same(value, default):
                shown.append(f"{name}={_short_repr(value)}")
        return f"{type(self).__name__}({', '.join(shown)})"


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(type(a) is type(b) and a == b)
    except (TypeError, ValueError, RuntimeError):  # arrays and tensors compare elementwise
        return False


def _short_repr(v: Any) -> str:
    r = repr(v) if not hasattr(v, "__len__") or isinstance(v, (str, tuple, list, dict)) else f"<{type(v).__name__}>"
    return r if len(r) <= 60 else r[:57] + "..."


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


@contextlib.contextmanager
def _one_thread(blas: bool) -> Iterator[None]:
    """Limit torch's intra-op threads (and, with ``blas``, every BLAS/OpenMP pool) to one, then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if blas:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1):
                yield
        else:
            yield
    finally:
        torch.set_num_threads(before)


class Valuer(ParamsMixin):
    """Base class: ``fit`` validates, times and stores ``values_`` (N,) float64; higher = more valuable.

    Every constructor argument is declared in :attr:`_constraints` (scikit-learn's ``_parameter_constraints``):
    a kind of :data:`_KINDS` or a tuple of allowed strings. ``fit`` checks them all before any work.
    scikit-learn estimator conventions (:class:`ParamsMixin`): ``get_params(deep=True)``, ``set_params``,
    ``sklearn.base.clone``, a ``repr`` of the changed arguments.
    """

    #: parameter name → constraint kind (see ``_KINDS``) or tuple of choices
    _constraints: dict[str, Any] = {}

    #: Whether :meth:`fit` needs ``X_val, y_val``.
    requires_validation: bool = False
    #: Whether the method's work is numpy/scipy BLAS (its thread pools are limited too, which costs ~40 ms
    #: the first time threadpoolctl scans the loaded libraries); torch-only methods limit torch's threads.
    uses_blas: bool = False
    #: Short method name used in tables and CSV columns.
    name: str = "valuer"

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> Valuer:
        """Value every training point.

        Args:
            X: (N, D) features.  y: (N,) class labels: ints, strings or bools, at least two classes (encoded
                as ``classes_``; any labels a scikit-learn classifier takes).
            X_val, y_val: validation split, required by utility-based methods (KNN, TMC, LOO, Data-OOB ignores
                it); ``y_val`` must use classes of ``y``.
        Returns:
            self, with ``values_`` (N,) float64 (row i of X → ``values_[i]``), ``classes_`` (K,) and
            ``fit_time_`` seconds.
        """
        self._check_params()
        data = validate_data(X, y, X_val, y_val, owner=type(self).__name__, need_val=self.requires_validation)
        t0 = time.perf_counter()
        # The built-in models are tiny (thousands of refits of a logistic regression): multi-threaded BLAS/OpenMP
        # only adds synchronisation, and on a busy machine costs 10-80x. The limit is scoped and restored.
        with _one_thread(self.uses_blas):
            values = np.asarray(self._compute_values(data=data), dtype=np.float64)
        self.fit_time_ = time.perf_counter() - t0
        if values.shape != (data.X.shape[0],):
            raise LumosError(f"{type(self).__name__} produced values of shape {values.shape}; expected ({data.X.shape[0]},).")
        self.values_ = values
        self.classes_ = data.classes
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
        """Write ``row,value,rank[,label]`` atomically: ``row`` = the point's row in the ``X`` given to
        :meth:`fit` (0-based), rank 0 = most valuable."""
        values = self._check_fitted()
        rank = np.empty(len(values), dtype=np.int64)
        rank[self.ranking()] = np.arange(len(values))
        cols: dict[str, np.ndarray] = {"row": np.arange(len(values)), "value": values, "rank": rank}
        if labels is not None:
            cols["label"] = np.asarray(labels)
        return write_values_csv(path, cols)

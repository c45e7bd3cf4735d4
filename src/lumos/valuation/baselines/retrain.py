"""Retraining-based baselines: TMC Data Shapley, leave-one-out, Data-OOB and Data Banzhaf (MSR).

The utility of a subset S is the validation accuracy of an L2-regularised multinomial logistic regression
trained on S (:class:`SoftmaxRegression`: the objective of scikit-learn's ``LogisticRegression(C=1)``, with
a fixed class set and warm starts, which is what makes thousands of refits affordable). U(∅) is the
accuracy of always predicting the most frequent validation class (Ghorbani & Zou 2019).
"""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from lumos.core.errors import bad_param
from lumos.core.progress import track
from lumos.valuation.base import ValuationData, Valuer

__all__ = ["SoftmaxRegression", "TMCShapleyValuer", "LOOValuer", "DataOOBValuer", "BanzhafValuer"]


class SoftmaxRegression:
    """Multinomial logistic regression over a fixed set of ``n_classes``; minimises
    Σ_i CE(W x_i + b, y_i) + ½·l2·‖W‖² with L-BFGS, optionally from a warm start ``init`` (D + 1, K)."""

    def __init__(self, n_classes: int, l2: float = 1.0, max_iter: int = 100) -> None:
        self.n_classes, self.l2, self.max_iter = n_classes, l2, max_iter
        self.params: np.ndarray | None = None
        self.constant: int | None = None

    def fit(self, X: np.ndarray, y: np.ndarray, init: np.ndarray | None = None) -> SoftmaxRegression:
        classes = np.unique(y)
        if len(classes) == 1:  # one class: predict it (no optimisation problem)
            self.constant, self.params = int(classes[0]), None
            return self
        self.constant = None
        d, k = X.shape[1], self.n_classes
        Xb = np.hstack([X, np.ones((len(X), 1))])
        Y = np.eye(k)[y]

        def fun(w: np.ndarray) -> tuple[float, np.ndarray]:
            W = w.reshape(d + 1, k)
            z = Xb @ W
            lse = np.asarray(logsumexp(z, axis=1))  # (N,); the stub also allows a list
            P = np.exp(z - lse[:, None])
            reg = W[:-1]
            f = float((lse - (z * Y).sum(1)).sum() + 0.5 * self.l2 * (reg * reg).sum())
            grad = Xb.T @ (P - Y)
            grad[:-1] += self.l2 * reg
            return f, grad.ravel()

        x0 = np.zeros((d + 1) * k) if init is None else np.asarray(init, dtype=np.float64).ravel()
        res = minimize(fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": self.max_iter})
        self.params = res.x.reshape(d + 1, k)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.constant is not None:
            return np.full(len(X), self.constant)
        if self.params is None:
            raise bad_param("model", "a fitted SoftmaxRegression", "unfitted", owner="SoftmaxRegression")
        return (X @ self.params[:-1] + self.params[-1]).argmax(1)

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        return float((self.predict(X) == y).mean())


class _Utility:
    """U(S) = validation accuracy of SoftmaxRegression trained on S (warm-startable).

    For tiny training sets (N ≤ ``CACHE_MAX_N``) utilities are memoised by subset and fitted from a cold
    start, so U is a pure function of S and Monte Carlo estimators revisit the 2^N subsets for free.
    """

    CACHE_MAX_N = 16

    def __init__(self, data: ValuationData, l2: float, max_iter: int) -> None:
        self.data, self.l2, self.max_iter = data, l2, max_iter
        self.X_val, self.y_val = data.validation("retraining utility")
        self.empty = float(np.bincount(self.y_val).max() / len(self.y_val))
        self.cache: dict[tuple[int, ...], tuple[float, np.ndarray | None]] | None = (
            {} if len(data.y) <= self.CACHE_MAX_N else None)

    def fit(self, idx: np.ndarray, init: np.ndarray | None = None) -> SoftmaxRegression:
        m = SoftmaxRegression(self.data.n_classes, self.l2, self.max_iter)
        return m.fit(self.data.X[idx], self.data.y[idx], init)

    def __call__(self, idx: np.ndarray, init: np.ndarray | None = None) -> tuple[float, np.ndarray | None]:
        if len(idx) == 0:
            return self.empty, None
        if self.cache is not None:
            key = tuple(sorted(int(i) for i in idx))
            if key not in self.cache:
                m = self.fit(np.array(key))
                self.cache[key] = (m.score(self.X_val, self.y_val), m.params)
            return self.cache[key]
        m = self.fit(idx, init)
        return m.score(self.X_val, self.y_val), m.params


class _RetrainValuer(Valuer):
    requires_validation = True
    uses_blas = True  # scipy's L-BFGS on numpy arrays

    def _utility(self, data: ValuationData) -> _Utility:
        return _Utility(data, getattr(self, "l2", 1.0), getattr(self, "max_iter", 100))


class TMCShapleyValuer(_RetrainValuer):
    """Truncated Monte Carlo Data Shapley (Ghorbani & Zou 2019).

    Each permutation adds points one at a time (warm-started refits); once |U(N) − U(prefix)| <
    ``truncation``·U(N) the remaining marginals are 0. Stops when the mean absolute change of the running
    values over the last ``window`` permutations is below ``tolerance`` × their mean magnitude (converged),
    or after ``max_permutations`` or ``max_time`` seconds. Attributes: ``n_permutations_``, ``converged_``.
    """

    name = "tmc"
    _constraints = {"max_permutations": "positive_int", "tolerance": "nonneg", "window": "positive_int",
                    "truncation": "nonneg", "max_time": "positive_or_none", "l2": "nonneg",
                    "max_iter": "positive_int", "seed": "int"}

    def __init__(self, max_permutations: int = 500, tolerance: float = 0.05, window: int = 20,
                 truncation: float = 0.01, max_time: float | None = None, l2: float = 1.0, max_iter: int = 50,
                 seed: int = 0) -> None:
        self.max_permutations = max_permutations
        self.tolerance = tolerance
        self.window = window
        self.truncation = truncation
        self.max_time = max_time
        self.l2 = l2
        self.max_iter = max_iter
        self.seed = seed

    def _permutation(self, util: _Utility, perm: np.ndarray, full: float) -> np.ndarray:
        marg = np.zeros(len(perm))
        prev, params = util.empty, None
        for j, i in enumerate(perm):
            if abs(full - prev) < self.truncation * abs(full):
                break
            cur, params = util(perm[: j + 1], params)
            marg[i] = cur - prev
            prev = cur
        return marg

    def _compute_values(self, *, data: ValuationData) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        util = self._utility(data)
        n = len(data.y)
        full = util(np.arange(n))[0]
        total, history = np.zeros(n), []
        t0 = time.perf_counter()
        self.converged_ = False
        t = 0
        for t in track(range(1, self.max_permutations + 1), "TMC permutations"):
            total += self._permutation(util, rng.permutation(n), full)
            history.append(total / t)
            if len(history) > self.window:
                old, new = history[-self.window - 1], history[-1]
                if np.abs(new - old).mean() < self.tolerance * max(np.abs(new).mean(), 1e-12):
                    self.converged_ = True
                    break
                history = history[-self.window - 1:]
            if self.max_time is not None and time.perf_counter() - t0 > self.max_time:
                break
        self.n_permutations_ = t
        return total / t


class LOOValuer(_RetrainValuer):
    """Leave-one-out: U(N) − U(N ∖ {i}), each refit warm-started from the full model."""

    name = "loo"
    _constraints = {"l2": "nonneg", "max_iter": "positive_int"}

    def __init__(self, l2: float = 1.0, max_iter: int = 100) -> None:
        self.l2 = l2
        self.max_iter = max_iter

    def _compute_values(self, *, data: ValuationData) -> np.ndarray:
        util = self._utility(data)
        n = len(data.y)
        full, params = util(np.arange(n))
        values = np.zeros(n)
        for i in track(range(n), "leave-one-out"):
            values[i] = full - util(np.delete(np.arange(n), i), params)[0]
        return values


class DataOOBValuer(_RetrainValuer):
    """Data-OOB (Kwon & Zou 2023): mean out-of-bag correctness of each point over ``n_estimators`` bootstrap
    models (logistic regression). Points never out of bag get the mean value. Needs no validation data."""

    name = "oob"
    _constraints = {"n_estimators": "positive_int", "l2": "nonneg", "max_iter": "positive_int", "seed": "int"}
    requires_validation = False

    def __init__(self, n_estimators: int = 100, l2: float = 1.0, max_iter: int = 100, seed: int = 0) -> None:
        self.n_estimators = n_estimators
        self.l2 = l2
        self.max_iter = max_iter
        self.seed = seed

    def _compute_values(self, *, data: ValuationData) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        n = len(data.y)
        score, count = np.zeros(n), np.zeros(n)
        for _ in track(range(self.n_estimators), "Data-OOB bootstraps"):
            boot = rng.integers(0, n, size=n)
            oob = np.setdiff1d(np.arange(n), boot)
            if len(oob) == 0:
                continue
            m = SoftmaxRegression(data.n_classes, self.l2, self.max_iter).fit(data.X[boot], data.y[boot])
            score[oob] += m.predict(data.X[oob]) == data.y[oob]
            count[oob] += 1
        values = np.where(count > 0, score / np.maximum(count, 1), np.nan)
        return np.where(np.isnan(values), np.nanmean(values) if (count > 0).any() else 0.0, values)


class BanzhafValuer(_RetrainValuer):
    """Data Banzhaf by maximum sample reuse (Wang & Jia 2023): ``n_samples`` random subsets (each point in with
    probability ½); value_i = mean U(S ∋ i) − mean U(S ∌ i)."""

    name = "banzhaf"
    _constraints = {"n_samples": "positive_int", "l2": "nonneg", "max_iter": "positive_int", "seed": "int"}

    def __init__(self, n_samples: int = 200, l2: float = 1.0, max_iter: int = 100, seed: int = 0) -> None:
        self.n_samples = n_samples
        self.l2 = l2
        self.max_iter = max_iter
        self.seed = seed

    def _compute_values(self, *, data: ValuationData) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        util = self._utility(data)
        n = len(data.y)
        masks = rng.random((self.n_samples, n)) < 0.5
        u = np.array([util(np.flatnonzero(m))[0] for m in track(masks, "Banzhaf subsets")])
        n_in = masks.sum(0)
        n_out = self.n_samples - n_in
        mean_in = np.where(n_in > 0, masks.T.astype(float) @ u / np.maximum(n_in, 1), 0.0)
        mean_out = np.where(n_out > 0, (~masks).T.astype(float) @ u / np.maximum(n_out, 1), 0.0)
        return mean_in - mean_out

"""Exact KNN-Shapley (Jia et al. 2019), vectorised over validation points, and its brute-force twin.

Utility for one validation point t: U_t(S) = (1/K)·#{j among the min(K, |S|) nearest points of S to t with
y_j = y_t}; the value is the mean over validation points of the Shapley value of U_t. With training points
sorted by distance to t (α_1 nearest, ..., α_N farthest), 1-based:

    s_N = 1[y_{α_N} = y_t] · min(K, N) / (N K)      (= 1[·]/N when N ≥ K, as in the paper)
    s_i = s_{i+1} + (1[y_{α_i} = y_t] − 1[y_{α_{i+1}} = y_t]) / K · min(K, i) / i

computed for a chunk of validation points at once with a reversed cumulative sum (memory O(chunk·N)).
Ties in distance are broken by training index (stable sort), in both implementations.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from lumos.core.errors import bad_param
from lumos.core.validation import check_positive_int
from lumos.valuation.base import ValuationData, Valuer

__all__ = ["knn_shapley", "knn_shapley_naive", "KNNShapleyValuer"]


def _check_k(k: int) -> None:
    check_positive_int(k, "k", owner="knn_shapley")


def knn_shapley(X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, k: int = 10,
                chunk: int = 256) -> np.ndarray:
    """(N,) exact KNN-Shapley values of the training points (X (N, D), y (N,)) for validation (X_val, y_val)."""
    _check_k(k)
    Xt = torch.as_tensor(X, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.int64)
    n = len(Xt)
    pos = torch.arange(1, n, dtype=torch.float64)  # i = 1..N-1
    coef = torch.clamp(pos, max=k) / pos / k  # min(K, i) / (i K)
    total = torch.zeros(n, dtype=torch.float64)
    for start in range(0, len(X_val), chunk):
        Xv = torch.as_tensor(X_val[start:start + chunk], dtype=torch.float64)
        yv = torch.as_tensor(y_val[start:start + chunk], dtype=torch.int64)
        d = torch.cdist(Xv, Xt)  # (m, N)
        order = torch.sort(d, dim=1, stable=True).indices
        match = (yt[order] == yv[:, None]).to(torch.float64)  # (m, N) in sorted order
        diff = (match[:, :-1] - match[:, 1:]) * coef  # term i for i = 1..N-1
        tail = torch.flip(torch.cumsum(torch.flip(diff, [1]), 1), [1])  # Σ_{j ≥ i} diff_j
        s = match[:, -1:] * (min(k, n) / (n * k)) + torch.cat([tail, torch.zeros(len(Xv), 1, dtype=torch.float64)], dim=1)
        total.scatter_add_(0, order.reshape(-1), s.reshape(-1))
    return (total / len(X_val)).numpy()


def knn_shapley_naive(X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, k: int = 10,
                      chunk: int = 256) -> np.ndarray:
    """Oracle twin of :func:`knn_shapley`: enumerate all subsets (N ≤ 12) of the KNN utility."""
    _check_k(k)
    n = len(X)
    if n > 12:
        raise bad_param("X", "at most 12 points (the oracle enumerates subsets)", n, owner="knn_shapley_naive")
    d = np.linalg.norm(np.asarray(X_val)[:, None, :] - np.asarray(X)[None, :, :], axis=2)
    ranks = np.argsort(np.argsort(d, axis=1, kind="stable"), axis=1)  # rank of each train point per val point

    def utility(sub: tuple[int, ...]) -> float:
        if not sub:
            return 0.0
        idx = np.array(sub)
        total = 0.0
        for t in range(len(X_val)):
            nearest = idx[np.argsort(ranks[t, idx])][:k]
            total += float((np.asarray(y)[nearest] == y_val[t]).sum()) / k
        return total / len(X_val)

    util = {s: utility(s) for r in range(n + 1) for s in itertools.combinations(range(n), r)}
    phi = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for r in range(n):
            w = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
            for sub in itertools.combinations(others, r):
                phi[i] += w * (util[tuple(sorted(sub + (i,)))] - util[sub])
    return phi


class KNNShapleyValuer(Valuer):
    """Exact KNN-Shapley with ``k`` neighbours on validation data (Euclidean distance on the features)."""

    name = "knn"
    _constraints = {"k": "positive_int"}
    requires_validation = True

    def __init__(self, k: int = 10) -> None:
        self.k = k

    def _compute_values(self, *, data: ValuationData) -> np.ndarray:
        X_val, y_val = data.validation(type(self).__name__)
        return knn_shapley(data.X, data.y, X_val, y_val, k=self.k)

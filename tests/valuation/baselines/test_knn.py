"""Vectorised exact KNN-Shapley == brute-force enumeration of the KNN utility."""

import numpy as np
import pytest

from lumos.core.errors import LumosError
from lumos.valuation.baselines import KNNShapleyValuer, knn_shapley, knn_shapley_naive


@pytest.mark.parametrize("n,k,m", [(1, 1, 2), (2, 3, 3), (5, 1, 4), (7, 3, 5), (8, 2, 3), (6, 10, 2), (9, 4, 7)])
def test_recursion_equals_brute_force(n, k, m):
    rng = np.random.default_rng(n * 100 + k)
    X, Xv = rng.normal(size=(n, 3)), rng.normal(size=(m, 3))
    y, yv = rng.integers(0, 3, n), rng.integers(0, 3, m)
    got = knn_shapley(X, y, Xv, yv, k=k, chunk=2)
    np.testing.assert_allclose(got, knn_shapley_naive(X, y, Xv, yv, k=k), atol=1e-14, rtol=0)


def test_efficiency_and_chunk_invariance():
    rng = np.random.default_rng(0)
    X, Xv = rng.normal(size=(40, 2)), rng.normal(size=(13, 2))
    y, yv = rng.integers(0, 2, 40), rng.integers(0, 2, 13)
    v = knn_shapley(X, y, Xv, yv, k=5)
    np.testing.assert_allclose(v, knn_shapley(X, y, Xv, yv, k=5, chunk=3), atol=1e-15)
    # Σφ = U(N): fraction of label matches among the K nearest, averaged over validation points
    d = np.linalg.norm(Xv[:, None] - X[None], axis=2)
    nn_idx = np.argsort(d, axis=1, kind="stable")[:, :5]
    assert abs(v.sum() - (y[nn_idx] == yv[:, None]).mean()) < 1e-12


def test_valuer_needs_validation_and_valid_k():
    X, y = np.random.default_rng(0).normal(size=(10, 2)), np.arange(10) % 2
    with pytest.raises(LumosError, match="validation"):
        KNNShapleyValuer().fit(X, y)
    with pytest.raises(LumosError, match="positive int"):
        KNNShapleyValuer(k=0).fit(X, y, X, y)

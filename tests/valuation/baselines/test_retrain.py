"""Retraining baselines: SoftmaxRegression vs scikit-learn, TMC converges to exact Shapley on tiny data,
LOO / Banzhaf / Data-OOB against their definitions."""

import itertools
import math

import numpy as np

from lumos.valuation.base import validate_data
from lumos.valuation.baselines import (
    BanzhafValuer,
    DataOOBValuer,
    LOOValuer,
    SoftmaxRegression,
    TMCShapleyValuer,
)
from lumos.valuation.baselines.retrain import _Utility


def _tiny(n=6, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 2)) + 1.5 * y[:, None]
    yv = np.arange(20) % 2
    Xv = rng.normal(size=(20, 2)) + 1.5 * yv[:, None]
    return X, y, Xv, yv


def test_softmax_regression_matches_sklearn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(80, 3)), rng.integers(0, 3, 80)
    ours = SoftmaxRegression(3, l2=1.0, max_iter=500).fit(X, y)
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=2000).fit(X, y)
    np.testing.assert_allclose(ours.params[:-1], ref.coef_.T, atol=2e-4)
    np.testing.assert_allclose(ours.params[-1] - ours.params[-1].mean(), ref.intercept_ - ref.intercept_.mean(), atol=2e-4)


def _exact_shapley(util, n):
    phi = np.zeros(n)
    cache = {s: util(np.array(s, dtype=int))[0] for r in range(n + 1) for s in itertools.combinations(range(n), r)}
    for i in range(n):
        for r in range(n):
            w = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
            for s in itertools.combinations([j for j in range(n) if j != i], r):
                phi[i] += w * (cache[tuple(sorted(s + (i,)))] - cache[s])
    return phi


def test_tmc_converges_to_exact_shapley_on_tiny_data():
    X, y, Xv, yv = _tiny()
    data = validate_data(X, y, Xv, yv, owner="t")
    exact = _exact_shapley(_Utility(data, 1.0, 50), len(y))
    tmc = TMCShapleyValuer(max_permutations=2000, truncation=0.0, tolerance=0.005, window=60, seed=0)
    got = tmc.fit(X, y, Xv, yv).values_
    assert tmc.converged_ and tmc.n_permutations_ < 2000
    assert np.abs(got - exact).max() < 0.1 * np.abs(exact).max() + 0.01
    assert abs(got.sum() - exact.sum()) < 1e-9  # every permutation telescopes to U(N) − U(∅)


def test_loo_and_banzhaf_match_definitions():
    X, y, Xv, yv = _tiny(5, seed=1)
    data = validate_data(X, y, Xv, yv, owner="t")
    util = _Utility(data, 1.0, 100)
    full = util(np.arange(5))[0]
    loo = LOOValuer().fit(X, y, Xv, yv).values_
    want = np.array([full - util(np.delete(np.arange(5), i))[0] for i in range(5)])
    np.testing.assert_allclose(loo, want, atol=1e-12)
    ban = BanzhafValuer(n_samples=400, seed=0).fit(X, y, Xv, yv).values_
    exact = np.zeros(5)
    for i in range(5):
        others = [j for j in range(5) if j != i]
        subsets = [s for r in range(5) for s in itertools.combinations(others, r)]
        exact[i] = np.mean([util(np.array(sorted(s + (i,))))[0] - util(np.array(s, dtype=int))[0] for s in subsets])
    assert np.abs(ban - exact).max() < 0.15


def test_data_oob_flags_flipped_labels():
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    X = rng.normal(size=(60, 2)) + 3.0 * y[:, None]
    y_noisy = y.copy()
    y_noisy[:6] = 1 - y_noisy[:6]
    v = DataOOBValuer(n_estimators=15, seed=0).fit(X, y_noisy).values_
    assert v[:6].mean() < 0.2 < 0.8 < v[6:].mean()

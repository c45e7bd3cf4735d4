"""Evaluation helpers: noise injection, exact 1-D 2-means vs scikit-learn KMeans, F1/AUC by hand, removal
curves and selection accuracy."""

import numpy as np
import pytest

from lumos.core.errors import LumosError
from lumos.valuation.evaluation import (
    inject_label_noise,
    make_setting,
    noisy_detection_auc,
    noisy_detection_f1,
    noisy_label_data,
    removal_curve,
    removal_curves,
    selection_accuracy,
    two_means_split,
)


def test_noise_flips_to_another_class():
    y = np.arange(200) % 5
    yn, mask = inject_label_noise(y, 0.1, 5, seed=0)
    assert mask.sum() == 20 and (yn[mask] != y[mask]).all() and (yn[~mask] == y[~mask]).all()
    assert yn.min() >= 0 and yn.max() < 5
    y2, _ = inject_label_noise(y, 0.1, 5, seed=0)
    assert np.array_equal(yn, y2)
    with pytest.raises(LumosError, match="fraction"):
        inject_label_noise(y, 1.5)


def test_two_means_split_matches_kmeans_and_brute_force():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(0, 1, 50), rng.normal(6, 1, 20)])
    mask = two_means_split(v)
    km = KMeans(2, n_init=10, random_state=0).fit(v[:, None])
    low = km.labels_ == np.argmin(km.cluster_centers_.ravel())
    assert np.array_equal(mask, low)
    # brute force over every threshold on 9 points
    w = rng.normal(size=9)
    s = np.sort(w)
    sse = [((s[:k] - s[:k].mean()) ** 2).sum() + ((s[k:] - s[k:].mean()) ** 2).sum() for k in range(1, 9)]
    k = 1 + int(np.argmin(sse))
    assert two_means_split(w).sum() == k and w[two_means_split(w)].max() <= s[k - 1]


def test_f1_and_auc_by_hand():
    values = np.array([0.0, 0.1, 5.0, 5.1, 5.2, 5.3])
    noisy = np.array([True, False, False, False, False, True])
    # low cluster {0, 1}: tp = 1, precision 1/2, recall 1/2 → F1 = 0.5
    assert noisy_detection_f1(values, noisy) == pytest.approx(0.5)
    # AUC of −value: noisy ranks {1st, 6th} vs clean: pairs won 4 + 0 of 8 → 0.5
    assert noisy_detection_auc(values, noisy) == pytest.approx(0.5)
    assert np.isnan(noisy_detection_auc(values, np.zeros(6, dtype=bool)))


def _blobs(n, seed):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return rng.normal(size=(n, 4)) + 3 * np.eye(3, 4)[y], y


def test_removal_curve_orders_and_single_class_guard():
    X, y = _blobs(60, 0)
    Xt, yt = _blobs(30, 1)
    values = np.arange(60, dtype=float)
    accs = removal_curve(values, X, y, Xt, yt, fractions=(0.0, 0.5, 0.99), highest_first=True)
    assert len(accs) == 3 and accs[0] > 0.9
    # removing int(0.99·60) = 59 leaves one point (index 0, class 0): predicting class 0 everywhere
    assert accs[2] == pytest.approx((yt == 0).mean())


def test_noisy_label_data_and_removal_curves():
    X, y = _blobs(120, 0)
    data = noisy_label_data(X, y, noise=0.2, n_train=60, n_val=0.25, seed=3)
    s = data.split
    assert len(s.y_train) == 60 and len(s.y_val) == 30 and len(s.y_test) == 30
    # exactly the steps it names: make_split, then inject_label_noise on the training labels
    want, mask = inject_label_noise(s.y_train, 0.2, s.n_classes, seed=3)
    assert np.array_equal(data.y_noisy, want) and np.array_equal(data.noisy, mask) and data.noisy.sum() == 12
    values = {"a": np.arange(60.0), "b": -np.arange(60.0)}
    curves = removal_curves(values, data, (0.0, 0.5))
    assert set(curves) == {"a", "b"}
    for m, v in values.items():
        for k in ("high", "low"):
            assert curves[m][k] == removal_curve(v, s.X_train, data.y_noisy, s.X_test, s.y_test, (0.0, 0.5),
                                                 highest_first=(k == "high"))
    assert curves["a"]["high"] == curves["b"]["low"]
    with pytest.raises(LumosError, match="whole number"):
        noisy_label_data(X, y, noise=0.1, n_train=60.5, n_val=20, seed=0)


def test_settings_and_selection_accuracy():
    X, y = _blobs(90, 0)
    Xn, yn = make_setting(X, y, "noise30", seed=0)
    assert (yn != y).mean() <= 0.3
    Xi, yi = make_setting(X, y, "imbalance", seed=0)
    counts = np.bincount(yi, minlength=3)
    assert sorted(counts.tolist())[0] == 3 and len(yi) == 63
    Xt, yt = _blobs(30, 2)
    accs = selection_accuracy(np.ones(90), X, y, Xt, yt, fractions=(0.1, 0.5))
    assert len(accs) == 2 and all(0 <= a <= 1 for a in accs)
    with pytest.raises(LumosError, match="setting"):
        make_setting(X, y, "dirty")

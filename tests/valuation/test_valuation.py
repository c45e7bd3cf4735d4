"""CHGValuation: fit == explicit per-epoch oracle, estimator contract (the training hooks: test_tracker.py)."""

import numpy as np
import pytest
import torch

from lumos.core.errors import LumosError
from lumos.testing import assert_close
from lumos.valuation import CHGValuation, chg_shapley
from lumos.valuation.base import NotFittedError
from lumos.valuation.models import build_classifier, to_tensors, train_epoch
from lumos.valuation.per_sample import explicit_last_layer_grads


def _blobs(n=60, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = rng.normal(size=(n, d)) + 2.0 * np.eye(k, d)[y]
    return X, y


def _oracle_fit(X, y, variant, epochs, lr, batch_size, seed, model="logreg", per_class=False, val=None):
    """Same training loop; values at each epoch start from explicit torch.func gradients + chg_shapley
    (with α = the explicit mean validation vector when ``val = (X_val, y_val)``)."""
    Xt, yt = to_tensors(X, y)
    net = build_classifier(model, X.shape[1], int(y.max()) + 1, 64, seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    total = np.zeros(len(y))
    for _ in range(epochs):
        net.eval()
        loss, grads = explicit_last_layer_grads(net, Xt, yt, include_weight=(variant == "full"))
        feats = (loss[:, None] * grads).double()
        phi = torch.zeros(len(y), dtype=torch.float64)
        groups = yt if per_class else torch.zeros_like(yt)
        alpha = None
        if val is not None:
            Xv, yv = to_tensors(*val)
            lv, gv = explicit_last_layer_grads(net, Xv, yv, include_weight=(variant == "full"))
            alpha = (lv[:, None] * gv).double().mean(0)
        for k in torch.unique(groups):
            phi[groups == k] = chg_shapley(feats[groups == k], alpha)
        total += phi.numpy()
        train_epoch(net, opt, Xt, yt, batch_size, gen)
    return total / epochs


@pytest.mark.parametrize("variant,model,per_class", [("full", "logreg", False), ("bias", "mlp", False),
                                                     ("full", "mlp", True)])
def test_fit_equals_explicit_oracle(variant, model, per_class):
    X, y = _blobs()
    val = CHGValuation(variant=variant, model=model, per_class=per_class, epochs=3, lr=0.05, batch_size=16, seed=1)
    assert val.fit(X, y) is val
    want = _oracle_fit(X, y, variant, 3, 0.05, 16, 1, model=model, per_class=per_class)
    # float32 model: the oracle's explicit gradients differ from g, h at float32 rounding
    assert_close("values_", torch.from_numpy(val.values_), torch.from_numpy(want), atol=1e-6, rtol=1e-4)
    assert len(val.epoch_values_) == 3 and val.n_epochs_ == 3
    assert_close("mean of epochs", torch.from_numpy(val.values_),
                 torch.from_numpy(np.mean(val.epoch_values_, axis=0)), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("variant", ["bias", "full"])
def test_fit_with_validation_direction_equals_explicit_oracle(variant):
    X, y = _blobs()
    Xv, yv = _blobs(n=21, seed=5)
    val = CHGValuation(variant=variant, alpha="valid", epochs=2, lr=0.05, batch_size=16, seed=2).fit(X, y, Xv, yv)
    want = _oracle_fit(X, y, variant, 2, 0.05, 16, 2, val=(Xv, yv))
    assert_close("values_ (alpha = validation mean)", torch.from_numpy(val.values_), torch.from_numpy(want),
                 atol=1e-6, rtol=1e-4)
    with pytest.raises(LumosError, match="X_val"):
        CHGValuation(alpha="valid").fit(X, y)


def test_deterministic_and_inputs_not_mutated():
    X, y = _blobs()
    X0, y0 = X.copy(), y.copy()
    v1 = CHGValuation(epochs=2, seed=3).fit(X, y).values_
    v2 = CHGValuation(epochs=2, seed=3).fit(X, y).values_
    assert np.array_equal(v1, v2)
    assert np.array_equal(X, X0) and np.array_equal(y, y0)


def test_rankings_csv_and_params(tmp_path):
    X, y = _blobs()
    val = CHGValuation(epochs=2)
    assert val.get_params()["epochs"] == 2 and "CHGValuation(" in repr(val)
    with pytest.raises(NotFittedError, match="not fitted"):
        val.ranking()
    val.fit(X, y)
    r = val.ranking()
    assert sorted(r.tolist()) == list(range(len(y))) and val.values_[r[0]] == val.values_.max()
    path = val.to_csv(tmp_path / "v.csv", labels=y)
    lines = path.read_text().splitlines()
    assert lines[0] == "row,value,rank,label" and len(lines) == len(y) + 1
    assert int(lines[1 + r[0]].split(",")[2]) == 0


def test_clear_errors():
    X, y = _blobs()
    with pytest.raises(LumosError, match="non-empty"):
        CHGValuation().fit(np.zeros((0, 4)), np.zeros(0, dtype=int))
    with pytest.raises(LumosError, match="at least two classes"):
        CHGValuation().fit(X, np.zeros(len(y), dtype=int))
    with pytest.raises(LumosError, match="one type"):
        CHGValuation().fit(X, [1 if i % 2 else "a" for i in range(len(y))])
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(LumosError, match="finite"):
        CHGValuation().fit(Xn, y)
    with pytest.raises(LumosError, match="variant"):
        CHGValuation(variant="weights").fit(X, y)
    with pytest.raises(LumosError, match="epochs"):
        CHGValuation(epochs=0).fit(X, y)
    with pytest.raises(LumosError, match="per_class"):
        CHGValuation(per_class=1).fit(X, y)


def test_any_class_labels_give_the_same_values_as_codes():
    """Labels are names (as in scikit-learn): shifted ints, strings, an object list and a torch tensor all give
    the values of the codes 0..K-1 they encode; classes_ and labels_ speak the user's labels."""
    import torch

    X, y = _blobs()
    names = np.array(["ant", "bee", "cat", "dog"])[: y.max() + 1]
    want = CHGValuation(epochs=2).fit(X, y).values_
    for labels in (y - 1, y * 10 + 5, names[y], list(names[y]), torch.as_tensor(y)):
        v = CHGValuation(epochs=2).fit(X, labels)
        np.testing.assert_array_equal(v.values_, want)
    assert v.classes_.tolist() == list(range(y.max() + 1))
    s = CHGValuation(epochs=2).fit(X, names[y])
    assert s.classes_.tolist() == names.tolist() and s.labels_.tolist() == names[y].tolist()

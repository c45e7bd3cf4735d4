"""Contract suite over every valuer (scikit-learn's parametrize_with_checks in spirit): output shape and
dtype, seeded determinism, inputs not mutated, NotFittedError, clear errors, noisy points valued lower."""

import numpy as np
import pytest

from lumos.core.errors import LumosError
from lumos.valuation.base import NotFittedError
from lumos.valuation.baselines import METHODS, make_valuer, valuer_params

FAST = {
    "chg": {"epochs": 3},
    "tmc": {"max_permutations": 3, "seed": 0},
    "oob": {"n_estimators": 8, "seed": 0},
    "banzhaf": {"n_samples": 16, "seed": 0},
    "loss": {"epochs": 3}, "el2n": {"epochs": 3}, "grand": {"epochs": 3}, "forgetting": {"epochs": 3},
}


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, 4)) + 2.5 * np.eye(3, 4)[y]
    yv = np.arange(12) % 3
    Xv = rng.normal(size=(12, 4)) + 2.5 * np.eye(3, 4)[yv]
    return X, y, Xv, yv


@pytest.mark.parametrize("name", METHODS)
def test_valuer_contract(name):
    X, y, Xv, yv = _data()
    copies = [a.copy() for a in (X, y, Xv, yv)]
    v = make_valuer(name, **FAST.get(name, {}))
    with pytest.raises(NotFittedError):
        v.ranking()
    assert v.fit(X, y, Xv, yv) is v
    assert v.values_.shape == (len(y),) and v.values_.dtype == np.float64 and np.isfinite(v.values_).all()
    assert v.fit_time_ >= 0 and sorted(v.ranking().tolist()) == list(range(len(y)))
    for a, b in zip((X, y, Xv, yv), copies):
        assert np.array_equal(a, b)
    again = make_valuer(name, **FAST.get(name, {})).fit(X, y, Xv, yv).values_
    assert np.array_equal(v.values_, again), "not deterministic for a fixed seed"
    assert set(v.get_params()) >= set(FAST.get(name, {}))


@pytest.mark.parametrize("name", METHODS)
def test_valuer_clear_errors(name):
    X, y, Xv, yv = _data()
    v = make_valuer(name, **FAST.get(name, {}))
    with pytest.raises(LumosError, match="non-empty"):
        v.fit(np.zeros((0, 4)), np.zeros(0, dtype=int), Xv, yv)
    with pytest.raises(LumosError, match="at least two classes"):
        v.fit(X, np.zeros(len(y), dtype=int), Xv, yv)
    with pytest.raises(LumosError, match="unseen label"):
        v.fit(X, y, Xv, yv + 3)
    with pytest.raises(LumosError, match="non-integer"):
        v.fit(X, y + 0.5, Xv, yv)
    with pytest.raises(LumosError, match="same kind"):
        v.fit(X, y, Xv, np.array(["a", "b", "c"])[yv])
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(LumosError, match="finite"):
        v.fit(bad, y, Xv, yv)
    with pytest.raises(LumosError, match="4 features"):
        v.fit(X, y, Xv[:, :3], yv)
    with pytest.raises(LumosError, match="both X_val and y_val"):
        v.fit(X, y, Xv, None)


@pytest.mark.parametrize("name", ["chg", "knn", "loss", "el2n", "oob"])
def test_flipped_labels_get_low_values(name):
    X, y, Xv, yv = _data(n=60, seed=1)
    y_noisy = y.copy()
    y_noisy[:6] = (y[:6] + 1) % 3
    params = {**FAST.get(name, {}), **({"epochs": 10, "lr": 0.05} if name in ("chg", "loss", "el2n") else {})}
    v = make_valuer(name, **params).fit(X, y_noisy, Xv, yv).values_
    assert np.median(v[:6]) < np.median(v[6:])


def test_unknown_method():
    with pytest.raises(LumosError, match="one of"):
        make_valuer("shapley9000")


def test_valuer_params_gives_each_method_the_options_it_takes():
    p = valuer_params(list(METHODS), variant="full", alpha="train", epochs=2, model="mlp", max_time=5.0, seed=7)
    assert p["chg"] == {"variant": "full", "alpha": "train", "epochs": 2, "model": "mlp", "seed": 7}
    assert p["tmc"] == {"max_time": 5.0, "seed": 7}
    for m in ("loss", "el2n", "grand", "forgetting"):
        assert p[m] == {"epochs": 2, "model": "mlp", "seed": 7}
    for m in ("oob", "banzhaf", "random"):
        assert p[m] == {"seed": 7}
    assert p["knn"] == {} and p["loo"] == {}
    for name, kw in p.items():
        assert make_valuer(name, **kw).get_params().items() >= kw.items()
    with pytest.raises(LumosError, match="one of"):
        valuer_params(["nope"], seed=0)



@pytest.mark.parametrize("name", METHODS)
def test_valuers_follow_estimator_conventions(name):
    """scikit-learn's BaseEstimator conventions, with sklearn.base.clone as the oracle: get_params(deep=True),
    set_params (nested too, unknown keys refused), clone gives an unfitted equal copy, repr of changed args."""
    from sklearn.base import clone

    X, y, Xv, yv = _data()
    v = make_valuer(name, **FAST.get(name, {}))
    params = v.get_params(deep=True)
    assert params == v.get_params(deep=False) and set(params) == set(type(v)._get_param_names())
    fitted = v.fit(X, y, Xv, yv)
    twin = clone(fitted)
    assert type(twin) is type(v) and twin.get_params() == params and not hasattr(twin, "values_")
    np.testing.assert_array_equal(twin.fit(X, y, Xv, yv).values_, v.values_)
    key = next(iter(params))
    assert v.set_params(**{key: params[key]}) is v
    with pytest.raises(LumosError, match="set_params key"):
        v.set_params(no_such_param=1)
    r = repr(make_valuer(name))
    assert r == f"{type(v).__name__}()"
    changed = {k: val for k, val in FAST.get(name, {}).items() if val != type(v)().get_params()[k]}
    assert repr(make_valuer(name, **changed)) == f"{type(v).__name__}({', '.join(f'{k}={val!r}' for k, val in changed.items())})"


def test_nested_params_and_grid_search_style_updates():
    """A meta-estimator holding a valuer exposes its params as ``valuer__name`` (deep) and sets them."""
    from sklearn.base import clone

    from lumos.valuation.base import ParamsMixin

    class Holder(ParamsMixin):
        def __init__(self, valuer=None, scale=1.0):
            self.valuer = valuer
            self.scale = scale

    h = Holder(make_valuer("chg", epochs=3))
    deep = h.get_params(deep=True)
    assert deep["valuer__epochs"] == 3 and "valuer__epochs" not in h.get_params(deep=False)
    h.set_params(valuer__epochs=5, scale=2.0)
    assert h.valuer.epochs == 5 and h.scale == 2.0
    c = clone(h)
    assert c.valuer is not h.valuer and c.valuer.epochs == 5 and repr(c) == "Holder(valuer=CHGValuation(epochs=5), scale=2.0)"

"""The CORDS selection baselines as samplers: contract shared with CHGSelector, and each method against
its solver's slow twin."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lumos.core.errors import LumosError
from lumos.valuation import CHGSelector
from lumos.valuation.selection_baselines import (
    SELECTORS,
    GlisterPBSelector,
    GradMatchPBSelector,
    RandomSelector,
    make_selector,
    selection_weights,
)
from lumos.valuation.selection_solvers import (
    batch_last_layer_grads_naive,
    fixed_batches,
    glister_greedy_naive,
    last_layer_stats,
    omp_nonneg_naive,
)


def _data(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 5, generator=g) + 2 * torch.eye(3, 5)[y]
    return TensorDataset(x, y)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))


@pytest.mark.parametrize("name", list(SELECTORS))
def test_contract_schedule_budget_weights_and_seeding(name):
    ds, val = _data(), _data(21, seed=1)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    a, b = (make_selector(name, ds, fraction=0.25, select_every=2, seed=3, val_dataset=val, batch_size=5)
            for _ in range(2))
    a.step(model, 0)
    b.step(model, 0)
    assert a.indices_.tolist() == b.indices_.tolist() and list(a) == list(b)  # seeded: choice, padding, order
    sel = make_selector(name, ds, fraction=0.25, select_every=2, seed=3, val_dataset=val, batch_size=5)
    loader = DataLoader(ds, batch_size=4, sampler=sel)
    made = []
    for epoch in range(4):
        made.append(sel.step(model, epoch))
        seen = []
        for x, y in loader:
            seen += y.tolist()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
        assert len(seen) == len(sel) == 15
    assert made == [True, False, True, False] and sel.n_selections_ == 2
    idx = sel.indices_
    assert len(set(idx.tolist())) == 15 and idx.min() >= 0 and idx.max() < 60
    w = selection_weights(sel, 60)
    assert w.shape == (60,) and (w[idx] > 0).all() and (np.delete(w, idx) == 0).all()


@pytest.mark.parametrize("cls", [RandomSelector, GradMatchPBSelector])
def test_errors_are_one_line_and_early(cls):
    ds = _data()
    with pytest.raises(LumosError, match="'fraction'"):
        cls(ds, fraction=0.0)
    with pytest.raises(LumosError, match="'select_every'"):
        cls(ds, select_every=0)
    with pytest.raises(LumosError, match="step"):
        list(cls(ds))
    with pytest.raises(LumosError, match="'dataset'"):
        cls([], fraction=0.5)


def test_glister_needs_a_validation_set_and_gradmatch_valid_target_too():
    with pytest.raises(LumosError, match="'val_dataset'"):
        GlisterPBSelector(_data())
    with pytest.raises(LumosError, match="'val_dataset'"):
        GradMatchPBSelector(_data(), target="valid")
    with pytest.raises(LumosError, match="'target'"):
        GradMatchPBSelector(_data(), target="test")
    with pytest.raises(LumosError, match="'method'"):
        make_selector("craig", _data(), fraction=0.1, select_every=1)


def test_adaptive_random_is_uniform_and_redrawn():
    ds = _data(50)
    sel = RandomSelector(ds, fraction=0.2, select_every=1, seed=0)
    counts = np.zeros(50)
    picks = []
    for epoch in range(400):
        sel.step(None, epoch)
        counts[sel.indices_] += 1
        picks.append(tuple(sel.indices_))
    assert len(set(picks)) == 400  # a fresh draw every selection
    assert (sel.weights_[sel.indices_] == 1).all()
    # each index is kept with probability 0.2: 80 ± 8 of 400; 5 sd covers all 50 with overwhelming probability
    assert np.abs(counts - 80).max() < 5 * np.sqrt(400 * 0.2 * 0.8)


@pytest.mark.parametrize("target", ["train", "valid"])
def test_gradmatch_selects_the_omp_batches_with_their_weights(target):
    ds, val = _data(40), _data(16, seed=2)
    model = _model(1)
    sel = GradMatchPBSelector(ds, fraction=0.4, batch_size=8, lam=0.5, target=target, val_dataset=val)
    sel.step(model, 0)
    A = batch_last_layer_grads_naive(model, ds, 8)  # (5, P) by autograd
    b = (A if target == "train" else batch_last_layer_grads_naive(model, val, 8)).sum(0)
    x = omp_nonneg_naive(A.T, b, 2, lam=0.5)
    np.testing.assert_allclose(sel.batch_weights_, x.numpy(), rtol=1e-4, atol=1e-6)
    blocks = fixed_batches(40, 8)
    chosen = [j for j in range(5) if x[j] > 0]
    want = {int(i): float(x[j]) for j in chosen for i in blocks[j]}
    got = {int(i): float(sel.weights_[i]) for i in sel.indices_}
    padded = set(got) - set(want)
    assert set(want) <= set(got) and len(got) == 16
    for i, w in want.items():
        assert got[i] == pytest.approx(w, rel=1e-4)
    assert all(got[i] == 1.0 for i in padded)  # CORDS pads a short OMP answer with random points of weight 1


def test_glister_selects_the_greedy_batches():
    ds, val = _data(48), _data(20, seed=5)
    model = _model(2)
    sel = GlisterPBSelector(ds, fraction=0.5, batch_size=8, val_dataset=val, eta=0.3)
    sel.step(model, 0)
    A = batch_last_layer_grads_naive(model, ds, 8)
    z, h, y = last_layer_stats(model, val)
    chosen = glister_greedy_naive(A, z, h, y, 3, 0.3)
    want = sorted(int(i) for j in chosen for i in fixed_batches(48, 8)[j])
    assert sel.indices_.tolist() == want
    assert (sel.weights_[sel.indices_] == 1).all()


def test_per_batch_budget_is_trimmed_to_the_fraction():
    ds = _data(60)
    sel = GlisterPBSelector(ds, fraction=0.3, batch_size=8, val_dataset=_data(10, 1))  # 18 = 2.25 batches
    sel.step(_model(), 0)
    assert sel.n_batches == 2 and len(sel.indices_) == 18 == len(sel)


def test_chg_selector_weights_are_ones_on_the_subset():
    sel = CHGSelector(_data(), fraction=0.5)
    sel.step(_model(), 0)
    w = selection_weights(sel, 60)
    assert w.sum() == 30 and (w[sel.indices_] == 1).all()


def test_weights_of_a_selector_that_has_not_selected_are_an_error_not_all_ones():
    from torch.utils.data import Sampler

    class _IndicesOnly(Sampler[int]):  # a duck-typed sampler: indices_, no weights_
        indices_ = None

    for sel in (RandomSelector(_data(), fraction=0.25), _IndicesOnly()):
        with pytest.raises(LumosError, match="has not selected yet"):
            selection_weights(sel, 60)
    done = _IndicesOnly()
    done.indices_ = np.array([1, 4])
    assert np.flatnonzero(selection_weights(done, 6)).tolist() == [1, 4]


@pytest.mark.parametrize("make,match", [
    (lambda ds: GradMatchPBSelector(ds, eps=float("nan")), "'eps' parameter of GradMatchPBSelector"),
    (lambda ds: GradMatchPBSelector(ds, lam=-1.0), "'lam'"),
    (lambda ds: CHGSelector(ds, batch_size=0), "'batch_size' parameter of CHGSelector"),
    (lambda ds: CHGSelector(ds, variant="weights"), "'variant'"),
    (lambda ds: RandomSelector(ds, seed=-1), "'seed' parameter of RandomSelector must be a non-negative int"),
    (lambda ds: RandomSelector(ds, seed=1.5), "'seed'"),
    (lambda ds: GlisterPBSelector(ds, val_dataset=ds, batch_size=0), "'batch_size'"),
])
def test_nonsense_arguments_are_refused_at_construction(make, match):
    with pytest.raises(LumosError, match=match) as exc:
        make(_data())
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("name", list(SELECTORS))
def test_selectors_follow_estimator_conventions(name):
    """get_params / set_params (re-validated) / sklearn.base.clone / repr, as scikit-learn estimators."""
    from sklearn.base import clone

    ds, val = _data(), _data(21, seed=1)
    sel = make_selector(name, ds, fraction=0.25, select_every=2, seed=3, val_dataset=val, batch_size=5)
    params = sel.get_params(deep=True)
    assert params["fraction"] == 0.25 and params["dataset"] is ds and params == sel.get_params(deep=False)
    twin = clone(sel)
    assert type(twin) is type(sel) and twin.indices_ is None
    for k, v in params.items():
        if k not in ("dataset", "val_dataset"):
            assert twin.get_params()[k] == v
    model = _model()
    sel.step(model, 0)
    twin.step(model, 0)
    assert sel.indices_.tolist() == twin.indices_.tolist()
    assert sel.set_params(fraction=0.5) is sel and sel.budget == 30
    with pytest.raises(LumosError, match="'fraction'"):
        sel.set_params(fraction=2.0)
    with pytest.raises(LumosError, match="set_params key"):
        sel.set_params(fractoin=0.5)
    r = repr(make_selector(name, ds, fraction=0.1, select_every=20, val_dataset=val))
    assert r.startswith(type(sel).__name__ + "(dataset=<TensorDataset>") and "fraction" not in r


def test_stratified_random_keeps_class_proportions_and_is_redrawn():
    from lumos.valuation.selection_baselines import StratifiedRandomSelector

    # 60 points, classes 0/1/2 with 30/20/10 members; budget 30 → int(30·30/60) = 15, 10, 5 per class exactly
    y = torch.tensor([0] * 30 + [1] * 20 + [2] * 10)
    ds = TensorDataset(torch.randn(60, 5), y)
    sel = StratifiedRandomSelector(ds, fraction=0.5, select_every=1, seed=0)
    sel.step(_model(), 0)
    first = sel.indices_.copy()
    assert np.bincount(y[first].numpy(), minlength=3).tolist() == [15, 10, 5]
    sel.step(_model(), 1)
    assert np.bincount(y[sel.indices_].numpy(), minlength=3).tolist() == [15, 10, 5]
    assert first.tolist() != sel.indices_.tolist()              # a fresh draw at every selection


def test_per_sample_glister_picks_what_its_solver_picks():
    from lumos.valuation.selection_baselines import GlisterSelector
    from lumos.valuation.selection_solvers import batch_last_layer_grads, glister_stochastic_greedy

    ds, val = _data(), _data(21, seed=1)
    model = _model()
    sel = GlisterSelector(ds, fraction=0.2, select_every=1, val_dataset=val, eta=0.05, seed=4)
    sel.step(model, 0)
    A = batch_last_layer_grads(model, ds, 1)
    z, h, y = last_layer_stats(model, val)
    want = glister_stochastic_greedy(A, z, h, y, 12, 0.05, np.random.default_rng([4, 0]))
    assert sel.indices_.tolist() == sorted(want) and (sel.weights_[sel.indices_] == 1).all()
    with pytest.raises(LumosError, match="'val_dataset'"):
        GlisterSelector(ds)
    with pytest.raises(LumosError, match="'epsilon'"):
        GlisterSelector(ds, val_dataset=val, epsilon=1.0)


def test_gradmatch_lam_zero_and_make_selector_passes_lam():
    ds = _data()
    sel = make_selector("gradmatch", ds, fraction=0.25, select_every=1, batch_size=5, lam=0.0)
    assert sel.lam == 0.0
    sel.step(_model(), 0)
    assert len(sel.indices_) == 15 and (sel.weights_[sel.indices_] > 0).all()

"""CHGSelector: per-class top fraction by CHG value, schedule, three-line integration, errors."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lumos.core.errors import LumosError
from lumos.valuation import CHGSelector, chg_shapley
from lumos.valuation.per_sample import explicit_last_layer_grads
from lumos.valuation.selection import per_class_top


def _data(n=60, d=5, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    x = torch.randn(n, d, generator=g) + 2 * torch.eye(k, d)[y]
    return TensorDataset(x, y)


def test_three_line_integration_trains_on_selected_subset():
    ds = _data()
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    selector = CHGSelector(ds, fraction=0.25, select_every=2, seed=0)        # 1
    loader = DataLoader(ds, batch_size=8, sampler=selector)                  # 2
    selections = []
    for epoch in range(4):
        selections.append(selector.step(model, epoch))                       # 3
        seen = []
        for x, y in loader:
            seen.append(y)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
        assert sum(len(s) for s in seen) == 15
    assert selections == [True, False, True, False] and selector.n_selections_ == 2
    assert len(set(selector.indices_.tolist())) == 15


def test_selection_is_per_class_top_by_class_mean_chg():
    ds = _data(n=31, k=3, seed=1)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    sel = CHGSelector(ds, fraction=0.5, variant="full")
    sel.step(model, 0)
    x, y = ds.tensors
    loss, grads = explicit_last_layer_grads(model, x, y)
    feats = (loss[:, None] * grads).double()
    budget = int(0.5 * 31)
    want = []
    for c in range(3):
        members = torch.nonzero(y == c).flatten()
        phi = chg_shapley(feats[members])
        assert np.allclose(sel.values_[members.numpy()], phi.numpy(), atol=1e-7, rtol=1e-5)
        r = int(budget * len(members) / 31)
        want += members[torch.argsort(-phi, stable=True)[:r]].tolist()
    assert set(want) <= set(sel.indices_.tolist())  # the shortfall is padded at random
    assert len(sel.indices_) == budget


def test_per_class_top_tiny_classes_and_padding():
    values = np.array([5.0, 1.0, 3.0, 0.0, 2.0])
    labels = np.array([0, 0, 0, 1, 2])  # classes of size 1 get int(budget/5) = 0 → padded
    idx = per_class_top(values, labels, 3, np.random.default_rng(0))
    assert len(idx) == 3 and 0 in idx and len(set(idx.tolist())) == 3
    with pytest.raises(LumosError, match="budget"):
        per_class_top(values, labels, 6, np.random.default_rng(0))


def test_order_is_seeded_and_errors():
    ds = _data()
    model = nn.Sequential(nn.Linear(5, 3))
    a, b = CHGSelector(ds, fraction=0.5, seed=4), CHGSelector(ds, fraction=0.5, seed=4)
    with pytest.raises(LumosError, match="step"):
        list(a)
    a.step(model, 0)
    b.step(model, 0)
    assert list(a) == list(b) and len(a) == 30
    with pytest.raises(LumosError, match="fraction"):
        CHGSelector(ds, fraction=0.0)
    with pytest.raises(LumosError, match="select_every"):
        CHGSelector(ds, select_every=0)
    with pytest.raises(LumosError, match="non-empty"):
        CHGSelector(TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64)))

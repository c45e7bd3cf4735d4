"""CHGValuation: fit == explicit per-epoch oracle, hook modes, DDP == one process, estimator contract."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from lumos.core import distributed as dist
from lumos.core.errors import LumosError
from lumos.testing import assert_close
from lumos.valuation import CHGValuation, chg_shapley
from lumos.valuation.base import NotFittedError
from lumos.valuation.models import build_classifier, to_tensors, train_epoch
from lumos.valuation.per_sample import explicit_last_layer_grads
from lumos.valuation.valuation import IndexedDataset


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
    with pytest.raises(LumosError, match="hook modes"):
        CHGValuation(alpha="valid").update(nn.Linear(4, 3), [(torch.zeros(2, 4), torch.zeros(2, dtype=torch.int64))],
                                           n_samples=2)


class _ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(3 * 4 * 4, 4)

    def forward(self, x):
        return self.head(self.body(x))


def _image_data(n=40):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 6, 6, generator=g), torch.randint(0, 4, (n,), generator=g)


def test_update_watch_and_explicit_agree_on_any_linear_head_model():
    """update (extra pass) == watch (in-run hook, shuffled, with indices) == explicit, at fixed parameters."""
    x, y = _image_data()
    model = _ConvNet()
    ds = TensorDataset(x, y)
    a = CHGValuation(variant="full")
    a.update(model, DataLoader(ds, batch_size=7))
    b = CHGValuation(variant="full")
    with b.watch(model, n_samples=len(ds)) as w:
        for xb, yb, idx in DataLoader(IndexedDataset(ds), batch_size=9, shuffle=True):
            w.record(model(xb), yb, idx)
        w.end_epoch()
    loss, grads = explicit_last_layer_grads(model, x, y)
    want = chg_shapley((loss[:, None] * grads).double())
    assert_close("update", torch.from_numpy(a.values_), want, atol=1e-7, rtol=1e-5)
    assert_close("watch", torch.from_numpy(b.values_), torch.from_numpy(a.values_), atol=1e-12, rtol=1e-12)
    assert len(model.head._forward_hooks) == 0
    # a second epoch is averaged in
    a.update(model, DataLoader(ds, batch_size=40))
    assert a.n_epochs_ == 2
    assert_close("2-epoch mean", torch.from_numpy(a.values_), want, atol=1e-7, rtol=1e-5)


def test_watch_training_smoke_and_partial_epochs():
    x, y = _image_data(30)
    model = _ConvNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    val = CHGValuation(variant="bias")
    loader = DataLoader(IndexedDataset(TensorDataset(x, y)), batch_size=8, shuffle=True, drop_last=True)
    with val.watch(model, n_samples=30) as w:
        for _ in range(2):
            for xb, yb, idx in loader:
                logits = model(xb)
                w.record(logits, yb, idx)
                nn.functional.cross_entropy(logits, yb).backward()
                opt.step()
                opt.zero_grad()
            w.end_epoch()
    assert val.values_.shape == (30,) and val.n_epochs_ == 2
    seen_any = ~np.isnan(val.values_)
    assert seen_any.sum() >= 24 and np.isfinite(val.values_[seen_any]).all()


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
    assert lines[0] == "index,value,rank,label" and len(lines) == len(y) + 1
    assert int(lines[1 + r[0]].split(",")[2]) == 0


def test_clear_errors():
    X, y = _blobs()
    with pytest.raises(LumosError, match="non-empty"):
        CHGValuation().fit(np.zeros((0, 4)), np.zeros(0, dtype=int))
    with pytest.raises(LumosError, match="at least two classes"):
        CHGValuation().fit(X, np.zeros(len(y), dtype=int))
    with pytest.raises(LumosError, match=r"labels in \[0, K\)"):
        CHGValuation().fit(X, y - 1)
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(LumosError, match="finite"):
        CHGValuation().fit(Xn, y)
    with pytest.raises(LumosError, match="variant"):
        CHGValuation(variant="weights").fit(X, y)
    with pytest.raises(LumosError, match="epochs"):
        CHGValuation(epochs=0).fit(X, y)
    x, yy = _image_data(8)
    with pytest.raises(LumosError, match=r"class indices in \[0, 4\)"):
        CHGValuation().update(_ConvNet(), DataLoader(TensorDataset(x, yy + 4), batch_size=4))
    no_head = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
    with pytest.raises(LumosError, match="last layer is nn.Linear"):
        CHGValuation().update(no_head, DataLoader(TensorDataset(x, yy), batch_size=4))
    nan_model = _ConvNet()
    with torch.no_grad():
        nan_model.head.weight[0, 0] = float("nan")
    with pytest.raises(LumosError, match="finite"):
        CHGValuation().update(nan_model, DataLoader(TensorDataset(x, yy), batch_size=4))


def _ddp_worker(rank, world, path, x, y):
    torch.manual_seed(0)
    model = _ConvNet().double()
    ds = IndexedDataset(TensorDataset(x, y))
    shard = Subset(ds, list(range(rank, len(ds), world)))
    val = CHGValuation(variant="full", per_class=True)
    val.update(model, DataLoader(shard, batch_size=5), n_samples=len(ds))
    assert dist.world_size() == world
    if rank == 0:
        torch.save(torch.from_numpy(val.values_), path)


@pytest.mark.distributed
def test_two_process_gloo_equals_one_process(tmp_path):
    x, y = _image_data(23)
    x = x.double()
    path = str(tmp_path / "ddp.pt")
    dist.spawn(_ddp_worker, nprocs=2, args=(path, x, y))
    torch.manual_seed(0)
    model = _ConvNet().double()
    single = CHGValuation(variant="full", per_class=True)
    single.update(model, DataLoader(TensorDataset(x, y), batch_size=5))
    got = torch.load(path, weights_only=True)
    assert_close("DDP values", got, torch.from_numpy(single.values_), atol=1e-12, rtol=1e-10)

"""CHGTracker: update (extra pass) == watch (in-run) == explicit oracle, averaging, errors, DDP == one process."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from lumos.core.errors import LumosError
from lumos.distributed import process_group as dist
from lumos.testing import assert_close
from lumos.valuation import CHGTracker, chg_shapley
from lumos.valuation.per_sample import explicit_last_layer_grads
from lumos.valuation.tracker import IndexedDataset


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
    a = CHGTracker(variant="full")
    a.update(model, DataLoader(ds, batch_size=7))
    b = CHGTracker(variant="full")
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
    val = CHGTracker(variant="bias")
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


def test_reset_starts_a_new_valuation():
    x, y = _image_data(12)
    model = _ConvNet()
    loader = DataLoader(TensorDataset(x, y), batch_size=5)
    t = CHGTracker()
    first = t.update(model, loader)
    t.update(model, loader)
    assert t.n_epochs_ == 2 and len(t.epoch_values_) == 2
    assert t.reset() is t and t.values_ is None and t.n_epochs_ == 0 and t.epoch_values_ == []
    again = t.update(model, loader)
    assert t.n_epochs_ == 1 and np.array_equal(again, first) and np.array_equal(t.values_, first)


def test_clear_errors():
    with pytest.raises(LumosError, match="variant"):
        CHGTracker(variant="weights")
    with pytest.raises(LumosError, match="per_class"):
        CHGTracker(per_class="yes")
    with pytest.raises(LumosError, match="n_samples"):
        CHGTracker().watch(_ConvNet(), n_samples=0)
    with pytest.raises(LumosError, match="n_samples"):
        CHGTracker().update(_ConvNet(), [(torch.zeros(2, 1, 6, 6), torch.zeros(2, dtype=torch.int64))])
    x, yy = _image_data(8)
    with pytest.raises(LumosError, match=r"class indices in \[0, 4\)"):
        CHGTracker().update(_ConvNet(), DataLoader(TensorDataset(x, yy + 4), batch_size=4))
    no_head = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
    with pytest.raises(LumosError, match="last layer is nn.Linear"):
        CHGTracker().update(no_head, DataLoader(TensorDataset(x, yy), batch_size=4))
    nan_model = _ConvNet()
    with torch.no_grad():
        nan_model.head.weight[0, 0] = float("nan")
    with pytest.raises(LumosError, match="finite"):
        CHGTracker().update(nan_model, DataLoader(TensorDataset(x, yy), batch_size=4))
    with pytest.raises(LumosError, match=r"'idx' parameter of CHGTracker"):
        CHGTracker().update(_ConvNet(), DataLoader(IndexedDataset(TensorDataset(x, yy)), batch_size=4), n_samples=4)


def test_a_buffer_without_batches_is_one_clear_error():
    from lumos.valuation.tracker import EpochBuffer

    buf = EpochBuffer(4, "bias")
    for mask in (torch.ones(4, dtype=torch.bool), torch.tensor([True, False, True, False])):
        with pytest.raises(LumosError, match="No samples were recorded"):
            buf.features(mask)
    with pytest.raises(LumosError, match="No samples were recorded"):
        buf.values(per_class=False)


def _ddp_worker(rank, world, path, x, y):
    torch.manual_seed(0)
    model = _ConvNet().double()
    ds = IndexedDataset(TensorDataset(x, y))
    shard = Subset(ds, list(range(rank, len(ds), world)))
    val = CHGTracker(variant="full", per_class=True)
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
    single = CHGTracker(variant="full", per_class=True)
    single.update(model, DataLoader(TensorDataset(x, y), batch_size=5))
    got = torch.load(path, weights_only=True)
    assert_close("DDP values", got, torch.from_numpy(single.values_), atol=1e-12, rtol=1e-10)


def test_shuffled_loader_with_indices_equals_unshuffled_and_without_is_refused():
    """A shuffled loader with indices gives the unshuffled loader's values exactly; one without indices (or a
    list of batches, or a custom sampler) is refused instead of assigning values to the wrong rows."""
    x, y = _image_data(30)
    model = _ConvNet()
    ds = TensorDataset(x, y)
    plain = CHGTracker(variant="full").update(model, DataLoader(ds, batch_size=7))
    torch.manual_seed(5)
    shuffled = CHGTracker(variant="full").update(model, DataLoader(IndexedDataset(ds), batch_size=7, shuffle=True))
    assert_close("shuffled with indices", torch.from_numpy(shuffled), torch.from_numpy(plain), atol=1e-12, rtol=1e-10)
    with pytest.raises(LumosError, match="shuffled DataLoader.*IndexedDataset"):
        CHGTracker().update(model, DataLoader(ds, batch_size=7, shuffle=True))
    with pytest.raises(LumosError, match="a list .*IndexedDataset"):
        CHGTracker().update(model, [(x[:5], y[:5])], n_samples=30)
    with pytest.raises(LumosError, match="SubsetRandomSampler"):
        CHGTracker().update(model, DataLoader(ds, sampler=torch.utils.data.SubsetRandomSampler(range(30))))


def test_dataset_of_another_size_is_refused_not_silently_restarted():
    x, y = _image_data(20)
    model = _ConvNet()
    t = CHGTracker()
    first = t.update(model, DataLoader(TensorDataset(x, y), batch_size=8))
    with pytest.raises(LumosError, match=r"1 epoch\(s\) of 20 samples.*has 12.*reset\(\)"):
        t.update(model, DataLoader(TensorDataset(x[:12], y[:12]), batch_size=8))
    assert t.n_epochs_ == 1 and np.array_equal(t.values_, first)  # nothing dropped
    with t.watch(model, n_samples=12) as w:
        w.record(model(x[:12]), y[:12], torch.arange(12))
        with pytest.raises(LumosError, match="20 samples"):
            w.end_epoch()
    assert t.reset().update(model, DataLoader(TensorDataset(x[:12], y[:12]), batch_size=8)).shape == (12,)


def test_watcher_misuse_is_one_clear_line():
    x, y = _image_data(8)
    model = _ConvNet()
    w = CHGTracker().watch(model, n_samples=8)
    with pytest.raises(LumosError, match=r"outside its watch\(\) block.*with tracker.watch"):
        w.record(model(x), y, torch.arange(8))
    with CHGTracker().watch(model, n_samples=8) as w:
        with pytest.raises(LumosError, match="'idx' parameter.*IndexedDataset"):
            w.record(model(x), y)
        with pytest.raises(LumosError, match="'y' parameter.*8 labels.*Got 5 labels"):
            w.record(model(x), y[:5], torch.arange(5))
    with pytest.raises(LumosError, match="outside") as exc:  # after the block, too
        w.record(model(x), y, torch.arange(8))
    assert "\n" not in str(exc.value)

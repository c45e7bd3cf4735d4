"""Streaming CHG values from factored (u, h) == explicit matrices, per group and with a given α."""

import pytest
import torch
from torch import nn

from lumos.core.errors import LumosError
from lumos.testing import assert_close
from lumos.valuation import chg_shapley
from lumos.valuation.features import CHGFeatures, CHGVector, chg_values_streaming
from lumos.valuation.per_sample import explicit_last_layer_grads, last_layer_stats


def _feats(n, c, d, variant, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, d), nn.ReLU(), nn.Linear(d, c)).double()
    x = torch.randn(n, 5, dtype=torch.float64)
    y = torch.randint(0, c, (n,))
    st = last_layer_stats(model, x, y)
    return model, x, y, CHGFeatures.from_stats(st.loss, st.g, st.h, variant)


@pytest.mark.parametrize("variant", ["bias", "full"])
@pytest.mark.parametrize("n,c,d", [(1, 2, 3), (2, 3, 1), (7, 4, 5), (33, 3, 9)])
def test_features_equal_explicit_per_sample_gradients(variant, n, c, d):
    model, x, y, f = _feats(n, c, d, variant, seed=n)
    loss, grads = explicit_last_layer_grads(model, x, y, include_weight=(variant == "full"))
    assert_close("x_i = loss_i * grad_i", f.explicit(), loss[:, None] * grads, atol=1e-12, rtol=1e-12)
    assert_close("sq norms", f.sq_norms(), f.explicit().square().sum(1), atol=1e-12, rtol=1e-10)
    assert_close("sum", f.sum().flat(), f.explicit().sum(0), atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("variant", ["bias", "full"])
@pytest.mark.parametrize("n", [1, 2, 3, 40])
def test_streaming_values_equal_explicit_closed_form(variant, n):
    _, _, _, f = _feats(n, 3, 4, variant, seed=7 + n)
    X = f.explicit()
    assert_close("alpha=mean", chg_values_streaming(f), chg_shapley(X), atol=1e-12, rtol=1e-9)
    g = torch.Generator().manual_seed(n)
    alpha = CHGVector(torch.randn(3, generator=g, dtype=torch.float64),
                      None if variant == "bias" else torch.randn(3, 4, generator=g, dtype=torch.float64))
    assert_close("general alpha", chg_values_streaming(f, alpha=alpha), chg_shapley(X, alpha.flat()),
                 atol=1e-12, rtol=1e-9)


def test_grouped_values_equal_one_game_per_group():
    _, _, y, f = _feats(50, 4, 6, "full", seed=3)
    X = f.explicit()
    got = chg_values_streaming(f, groups=y, n_groups=4)
    want = torch.zeros(50, dtype=torch.float64)
    for k in range(4):
        m = y == k
        if m.any():
            want[m] = chg_shapley(X[m])
    assert_close("per-group values", got, want, atol=1e-12, rtol=1e-9)


def test_reduce_hook_sees_every_statistic():
    _, _, _, f = _feats(10, 3, 2, "full")
    seen = []
    chg_values_streaming(f, reduce=lambda t: seen.append(t.shape) or t)
    assert seen == [torch.Size([1]), torch.Size([1, 3]), torch.Size([1, 3, 2]), torch.Size([1])]


def test_bad_groups_and_variant():
    _, _, _, f = _feats(5, 2, 2, "bias")
    with pytest.raises(LumosError, match="groups"):
        chg_values_streaming(f, groups=torch.tensor([0, 1, 2, 0, 1]), n_groups=2)
    with pytest.raises(LumosError, match="variant"):
        CHGFeatures.from_stats(torch.ones(2), torch.ones(2, 2), None, "weights")

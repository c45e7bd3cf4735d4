"""Per-sample last-layer statistics == explicit per-sample gradients (torch.func), and clear errors."""

import pytest
import torch
from torch import nn

from lumos.core.errors import LumosError
from lumos.testing import assert_close
from lumos.valuation.per_sample import (
    capture_last_layer,
    ce_logit_grad,
    explicit_last_layer_grads,
    find_last_linear,
    last_layer_stats,
)


def _mlp(d=7, hidden=5, c=3):
    return nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, c)).double()


@pytest.mark.parametrize("b,d,hidden,c", [(1, 3, 2, 2), (9, 7, 5, 3), (13, 4, 11, 6)])
def test_streaming_factors_equal_explicit_grads(b, d, hidden, c):
    torch.manual_seed(b)
    model = _mlp(d, hidden, c)
    x = torch.randn(b, d, dtype=torch.float64)
    y = torch.randint(0, c, (b,))
    st = last_layer_stats(model, x, y)
    loss, grads = explicit_last_layer_grads(model, x, y)
    assert_close("loss", st.loss, loss, atol=1e-12, rtol=1e-12)
    assert_close("bias grad g", st.g, grads[:, :c], atol=1e-12, rtol=1e-12)
    outer = (st.g[:, :, None] * st.h[:, None, :]).reshape(b, -1)
    assert_close("weight grad g⊗h", outer, grads[:, c:], atol=1e-12, rtol=1e-12)


def test_ce_logit_grad_matches_autograd():
    z = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 3, 1, 1, 2, 0])
    loss, g = ce_logit_grad(z.detach(), y)
    total = nn.functional.cross_entropy(z, y, reduction="sum")
    (auto,) = torch.autograd.grad(total, z)
    assert_close("g", g, auto, atol=1e-12, rtol=1e-12)
    assert_close("loss", loss, nn.functional.cross_entropy(z.detach(), y, reduction="none"), atol=1e-12, rtol=0)


def test_hook_is_removed_and_model_output_unchanged():
    model = _mlp()
    x = torch.randn(4, 7, dtype=torch.float64)
    head = find_last_linear(model)
    with capture_last_layer(model) as cap:
        out = model(x)
    assert torch.equal(cap["z"], out.detach())
    assert len(head._forward_hooks) == 0


def test_errors_no_linear_head_and_bad_labels():
    conv = nn.Sequential(nn.Conv1d(1, 2, 3))
    with pytest.raises(LumosError, match="last layer is nn.Linear"):
        find_last_linear(conv)
    # linear not last: softmax after the head changes the output
    model = nn.Sequential(nn.Linear(3, 2), nn.Softmax(dim=-1))
    with pytest.raises(LumosError, match="output of its last nn.Linear"):
        last_layer_stats(model, torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(LumosError, match=r"class indices in \[0, 2\)"):
        last_layer_stats(nn.Linear(3, 2), torch.randn(2, 3), torch.tensor([0, 2]))
    with pytest.raises(LumosError, match="integer tensor"):
        last_layer_stats(nn.Linear(3, 2), torch.randn(2, 3), torch.tensor([0.0, 1.0]))

import pytest
import torch

from lumos.ops.lightning import naive_lightning_attention
from lumos.ops.lightning.opaque import (
    IMPLEMENTATIONS,
    implementation,
    lightning_attention_backward,
    lightning_attention_op,
)
from lumos.testing import assert_close

NAMES = ["o", "final", "dq", "dk", "dv", "ds0"]


@pytest.mark.parametrize("impl", ["chunked", "recurrent", "naive"])
def test_op_passes_torch_opcheck(impl, make_inputs):
    # schema (no mutation or aliasing), fake (meta) shapes under FakeTensorMode, autograd registration (AOT
    # dispatch is exercised by the aot_eager compile tests of test_api.py)
    q, k, v, slope, s0 = make_inputs(1, 2, 11, 3, 2, dtype=torch.float32, n_states=3)
    if impl == "chunked":  # strided views, as lightning_attn passes (B, T, H, D) tensors transposed
        q, k, v = (t.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_(True) for t in (q, k, v))
        s0 = s0.detach().transpose(2, 3).contiguous().transpose(2, 3).requires_grad_(True)
    torch.library.opcheck(lightning_attention_op, (q, k, v, slope, s0, torch.tensor([0, 4, 4, 11]), impl),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def test_op_gradients_equal_the_implementation(make_inputs, run_with_grads):
    args = make_inputs(1, 2, 23, 4, 3, n_states=3)
    cu = torch.tensor([0, 6, 6, 23])
    ref = run_with_grads(naive_lightning_attention, *args, cu)

    def through_op(q, k, v, slope, s0, output_final_state, cu_seqlens):
        return lightning_attention_op(q, k, v, slope, s0, cu_seqlens, "chunked")

    got = run_with_grads(through_op, *args, cu)
    for name, a, b in zip(NAMES, got, ref):
        assert_close(name, a, b, atol=1e-11, rtol=1e-11)


def test_backward_op_slope_gradient_only_when_asked(make_inputs):
    q, k, v, slope, s0 = make_inputs(1, 2, 9, 3, 2, grad=False)
    do, dfinal = torch.randn(1, 2, 9, 2, dtype=torch.float64), torch.randn(1, 2, 3, 2, dtype=torch.float64)
    s = slope.clone().requires_grad_(True)
    o, final = naive_lightning_attention(q, k, v, s, s0, True)
    ref = torch.autograd.grad((o * do).sum() + (final * dfinal).sum(), s)[0]
    got = lightning_attention_backward(q, k, v, slope, s0, None, "recurrent", do, dfinal, True)[3]
    assert_close("dslope", got, ref, atol=1e-11, rtol=1e-11)
    assert not lightning_attention_backward(q, k, v, slope, s0, None, "recurrent", do, dfinal, False)[3].any()
    assert lightning_attention_backward(q, k, v, slope, None, None, "naive", do, dfinal, False)[4].numel() == 0


def test_slope_gradient_through_the_op_for_the_token_loop(make_inputs):
    q, k, v, slope, s0 = make_inputs(1, 2, 7, 3, 2)
    slope = slope.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: lightning_attention_op(q, k, v, s, s0, None, "recurrent"), (slope,))


def test_implementation_names():
    assert IMPLEMENTATIONS == ("chunked", "recurrent", "naive", "triton")
    assert implementation("naive") is naive_lightning_attention
    assert implementation("triton").__name__ == "triton_lightning_attention"

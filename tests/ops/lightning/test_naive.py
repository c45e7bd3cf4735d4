import math

import torch

from lumos.ops.lightning import naive_lightning_attention, recurrent_lightning_attention
from lumos.testing import assert_close


def test_hand_derived_two_tokens():
    # One head, Dk = Dv = 1, λ = exp(−s) = 0.5, S_{-1} = 2:
    # S_0 = 0.5·2 + k0·v0 = 1 + 2·3 = 7,  o_0 = q0·S_0 = 1·7 = 7
    # S_1 = 0.5·7 + k1·v1 = 3.5 + 1·(−1) = 2.5,  o_1 = q1·S_1 = 2·2.5 = 5
    q = torch.tensor([1.0, 2.0], dtype=torch.float64).view(1, 1, 2, 1)
    k = torch.tensor([2.0, 1.0], dtype=torch.float64).view(1, 1, 2, 1)
    v = torch.tensor([3.0, -1.0], dtype=torch.float64).view(1, 1, 2, 1)
    slope = torch.tensor([math.log(2.0)], dtype=torch.float64)
    s0 = torch.full((1, 1, 1, 1), 2.0, dtype=torch.float64)
    for fn in (naive_lightning_attention, recurrent_lightning_attention):
        o, final = fn(q, k, v, slope, s0, True)
        assert_close(f"{fn.__name__} o", o.flatten(), torch.tensor([7.0, 5.0], dtype=torch.float64), atol=1e-12)
        assert_close(f"{fn.__name__} final", final.flatten(), torch.tensor([2.5], dtype=torch.float64), atol=1e-12)


def test_naive_matches_recurrent_with_grads(make_inputs, run_with_grads):
    args = make_inputs(2, 3, 29, 6, 5)
    ref = run_with_grads(recurrent_lightning_attention, *args)
    got = run_with_grads(naive_lightning_attention, *args)
    for name, a, b in zip(["o", "final", "dq", "dk", "dv", "ds0"], got, ref):
        assert_close(name, a, b, atol=1e-11, rtol=1e-11)


def test_final_state_off_and_dtype(make_inputs, run_with_grads):
    q, k, v, slope, _ = make_inputs(1, 2, 5, 4, 4, dtype=torch.float32, state=False, grad=False)
    o, final = naive_lightning_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), slope)
    assert final is None and o.dtype == torch.bfloat16


def test_gradcheck_including_slope(make_inputs, run_with_grads):
    q, k, v, slope, s0 = make_inputs(1, 2, 5, 3, 2)
    slope = slope.clone().requires_grad_(True)

    def f(q, k, v, slope, s0):
        o, fin = naive_lightning_attention(q, k, v, slope, s0, True)
        return o, fin

    assert torch.autograd.gradcheck(f, (q, k, v, slope, s0))

import torch

from lumos.ops.lightning import naive_lightning_attention, recurrent_lightning_attention, recurrent_step
from lumos.testing import assert_close


def test_varlen_matches_naive_and_separate_sequences(make_inputs, run_with_grads):
    q, k, v, slope, s0 = make_inputs(1, 2, 23, 4, 3, n_states=4)
    cu = torch.tensor([0, 6, 6, 17, 23])
    ref = run_with_grads(naive_lightning_attention, q, k, v, slope, s0, cu)
    got = run_with_grads(recurrent_lightning_attention, q, k, v, slope, s0, cu)
    for name, a, b in zip(["o", "final", "dq", "dk", "dv", "ds0"], got, ref):
        assert_close(name, a, b, atol=1e-11, rtol=1e-11)
    # sequence 2 (tokens 6..17) alone
    o2, f2 = recurrent_lightning_attention(q[:, :, 6:17], k[:, :, 6:17], v[:, :, 6:17], slope, s0[2:3], True)
    assert_close("seq 2 output", got[0][:, :, 6:17], o2, atol=1e-12)
    assert_close("seq 2 final", got[1][2:3], f2, atol=1e-12)
    assert_close("empty sequence keeps its state", got[1][1], s0[1], atol=0)


def test_step_is_functional_and_continues_the_sequence(make_inputs, run_with_grads):
    q, k, v, slope, s0 = make_inputs(2, 3, 12, 5, 4, grad=False)
    o_full, s_full = recurrent_lightning_attention(q, k, v, slope, s0, True)
    _, s = recurrent_lightning_attention(q[:, :, :9], k[:, :, :9], v[:, :, :9], slope, s0, True)
    s_before = s.clone()
    o_step, s_new = recurrent_step(q[:, :, 9:], k[:, :, 9:], v[:, :, 9:], slope, s)
    assert torch.equal(s, s_before)
    assert_close("step output", o_step, o_full[:, :, 9:], atol=1e-12)
    assert_close("step state", s_new, s_full, atol=1e-12)


def test_gradcheck(make_inputs, run_with_grads):
    args = make_inputs(1, 2, 4, 3, 2)
    assert torch.autograd.gradcheck(lambda *a: recurrent_lightning_attention(*a[:4], a[4], True), args)

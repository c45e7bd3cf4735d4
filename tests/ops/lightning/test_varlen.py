import torch

from lumos.ops.lightning import chunk, chunked_lightning_attention, naive_lightning_attention
from lumos.ops.lightning.varlen import plan_dense, plan_packed
from lumos.testing import assert_close

NAMES = ["o", "final", "dq", "dk", "dv", "ds0"]


def _compare(got, ref, tol=1e-10, what=""):
    for name, a, b in zip(NAMES, got, ref):
        assert_close(f"{what}{name}", a, b, atol=tol, rtol=tol)


def test_plans_by_hand():
    # lengths 5, 0, 9 with blocks of 4: seq 0 → blocks [0:4], [4:5]; seq 1 empty; seq 2 → [5:9], [9:13], [13:14]
    p = plan_packed(torch.tensor([0, 5, 5, 14]), 4)
    assert p.starts == (0, 4, 5, 9, 13) and p.lengths == (4, 1, 4, 4, 1)
    assert p.first == (True, False, True, False, False) and p.last == (False, True, False, False, True)
    assert p.seq == (0, 0, 2, 2, 2) and p.empty == (1,) and p.n_seqs == 3
    d = plan_dense(10, 4)
    assert d.starts == (0, 4, 8) and d.lengths == (4, 4, 2) and d.first == (True, False, False)


def test_one_packed_sequence_equals_dense(make_inputs, run_with_grads):
    args = make_inputs(1, 3, 70, 5, 6)
    dense = run_with_grads(chunked_lightning_attention, *args, block_size=16)
    packed = run_with_grads(chunked_lightning_attention, *args, torch.tensor([0, 70]), block_size=16)
    _compare(packed, dense, tol=1e-12)


def test_varlen_matches_separate_sequences(monkeypatch, make_inputs, run_with_grads):
    monkeypatch.setattr(chunk, "SUPER_ROWS", 64)
    lens = [5, 0, 40, 17, 1, 33]
    cu = torch.tensor([0] + torch.tensor(lens).cumsum(0).tolist())
    q, k, v, slope, s0 = make_inputs(1, 2, sum(lens), 6, 4, n_states=len(lens))
    packed = run_with_grads(chunked_lightning_attention, q, k, v, slope, s0, cu, block_size=16)
    _compare(packed, run_with_grads(naive_lightning_attention, q, k, v, slope, s0, cu), what="packed vs naive ")
    for n, (a, b) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist())):
        if a == b:
            assert_close("empty sequence final", packed[1][n], s0[n], atol=0)
            continue
        o, fin = chunked_lightning_attention(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b], slope, s0[n : n + 1], True,
                                             block_size=16)
        assert_close(f"seq {n} output", packed[0][:, :, a:b], o, atol=1e-12, rtol=1e-12)
        assert_close(f"seq {n} final", packed[1][n : n + 1], fin, atol=1e-12, rtol=1e-12)
    # a sequence's inputs never influence another sequence's outputs or state
    o, fin = chunked_lightning_attention(q, k, v, slope, s0, True, cu, block_size=16)
    dq = torch.autograd.grad(o[:, :, 45:62].sum() + fin[3].sum(), q)[0]
    assert dq[:, :, :45].abs().max() == 0 and dq[:, :, 62:].abs().max() == 0

import doctest

import torch

from lumos.ops.lightning.utils import compute_dtype, per_sequence, split_packed


def test_compute_dtype():
    assert compute_dtype(torch.zeros(1, dtype=torch.float64)) == torch.float64
    for dt in (torch.float32, torch.bfloat16, torch.float16):
        assert compute_dtype(torch.zeros(1, dtype=dt)) == torch.float32


def test_split_packed_from_tensor_or_list():
    assert split_packed(torch.tensor([0, 3, 3, 7])) == [(0, 3), (3, 3), (3, 7)]
    assert split_packed([0, 5]) == [(0, 5)]
    assert all(type(a) is int for pair in split_packed(torch.tensor([0, 2], dtype=torch.int32)) for a in pair)


def _sum_scan(q, k, v, s0):
    # A toy recurrence with the implementations' contract: S_t = S_{t-1} + v_t (per feature), o_t = S_t.
    start = torch.zeros(v.shape[0], v.shape[1], 1, v.shape[-1]) if s0 is None else s0[:, :, :1]
    o = start + v.cumsum(2)
    return o, o[:, :, -1:] if v.shape[2] else start


def test_per_sequence_restarts_each_sequence_from_its_own_state():
    v = torch.arange(1.0, 8.0).view(1, 1, 7, 1)
    s0 = torch.tensor([10.0, 20.0, 30.0]).view(3, 1, 1, 1)
    o, final = per_sequence(_sum_scan, v, v, v, s0, [0, 2, 2, 7])
    # seq 0: 10 + [1, 2] → 11, 13; seq 1 empty → final 20; seq 2: 30 + [3..7] → 33, 37, 42, 48, 55
    assert o.flatten().tolist() == [11.0, 13.0, 33.0, 37.0, 42.0, 48.0, 55.0]
    assert final.flatten().tolist() == [13.0, 20.0, 55.0]
    o2, final2 = per_sequence(_sum_scan, v, v, v, None, torch.tensor([0, 2, 2, 7]))
    assert o2.flatten().tolist() == [1.0, 3.0, 3.0, 7.0, 12.0, 18.0, 25.0] and final2.flatten().tolist() == [3.0, 0.0, 25.0]


def test_per_sequence_without_offsets_is_one_call():
    v = torch.randn(2, 3, 5, 4)
    s0 = torch.randn(2, 3, 1, 4)
    o, final = per_sequence(_sum_scan, v, v, v, s0, None)
    ref_o, ref_f = _sum_scan(v, v, v, s0)
    assert torch.equal(o, ref_o) and torch.equal(final, ref_f)


def test_docstring_examples_run():
    from lumos.ops.lightning import utils

    result = doctest.testmod(utils)
    assert result.failed == 0 and result.attempted >= 3, result

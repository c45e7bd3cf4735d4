import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lumos.ops.lightning import chunk, chunked_lightning_attention, naive_lightning_attention
from lumos.testing import assert_close

NAMES = ["o", "final", "dq", "dk", "dv", "ds0"]


def _compare(got, ref, tol=1e-10, what=""):
    for name, a, b in zip(NAMES, got, ref):
        assert_close(f"{what}{name}", a, b, atol=tol, rtol=tol)


@pytest.mark.parametrize(
    "B, H, L, Dk, Dv, C, state",
    [
        (1, 1, 1, 4, 4, 16, True),  # one token
        (2, 3, 7, 5, 3, 16, True),  # shorter than a block, Dk != Dv
        (1, 2, 64, 8, 8, 16, False),  # exact multiple of the block
        (2, 2, 67, 6, 9, 16, True),  # partial last block
        (1, 2, 40, 48, 48, 32, True),  # MiniMax-like odd head dims
        (1, 1, 33, 80, 96, 32, True),
        (1, 1, 20, 128, 128, 64, False),
    ],
)
def test_matches_naive_fp64(B, H, L, Dk, Dv, C, state, make_inputs, run_with_grads):
    args = make_inputs(B, H, L, Dk, Dv, state=state)
    ref = run_with_grads(naive_lightning_attention, *args)
    got = run_with_grads(chunked_lightning_attention, *args, block_size=C)
    _compare(got, ref)


def test_many_spans_and_block_sizes_agree(monkeypatch, make_inputs, run_with_grads):
    args = make_inputs(2, 3, 150, 8, 6)
    ref = run_with_grads(naive_lightning_attention, *args)
    monkeypatch.setattr(chunk, "SUPER_ROWS", 50)  # one block per span: the scan carries across spans
    for C in (1, 8, 64, 256):
        _compare(run_with_grads(chunked_lightning_attention, *args, block_size=C), ref, what=f"C={C} ")


def test_gradcheck(make_inputs):
    args = make_inputs(1, 2, 11, 3, 2)
    assert torch.autograd.gradcheck(lambda *a: chunked_lightning_attention(*a[:4], a[4], True, block_size=4), args)
    cu = torch.tensor([0, 4, 11])
    q, k, v, slope, s0 = make_inputs(1, 2, 11, 3, 2, n_states=2)
    assert torch.autograd.gradcheck(
        lambda q, k, v, s0: chunked_lightning_attention(q, k, v, slope, s0, True, cu, block_size=4), (q, k, v, s0))


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-5), (torch.bfloat16, 1e-2), (torch.float16, 2e-3)])
def test_low_precision_inputs_accumulate_in_fp32(dtype, tol, make_inputs):
    q, k, v, slope, s0 = make_inputs(2, 2, 300, 16, 16, dtype=dtype, grad=False)
    o, fin = chunked_lightning_attention(q, k, v, slope, s0, True)
    ref_o, ref_fin = naive_lightning_attention(q.double(), k.double(), v.double(), slope.double(), s0.double(), True)
    assert o.dtype == dtype and fin.dtype == torch.float32
    assert_close("o", o, ref_o, atol=tol, rtol=tol, rms_tol=tol)
    assert_close("final", fin, ref_fin, atol=1e-4, rtol=1e-5, rms_tol=1e-6)


def test_low_precision_gradients_have_input_dtype(make_inputs, run_with_grads):
    q, k, v, slope, s0 = make_inputs(1, 2, 70, 8, 8, dtype=torch.bfloat16)
    got = run_with_grads(chunked_lightning_attention, q, k, v, slope, s0)
    ref = run_with_grads(naive_lightning_attention, *(t.detach().double().requires_grad_(True) for t in (q, k, v)),
                         slope.double(), s0.detach().double().requires_grad_(True))
    assert [g.dtype for g in got[2:]] == [torch.bfloat16] * 3 + [torch.float32]
    for name, a, b in zip(NAMES, got, ref):
        assert_close(name, a, b, atol=5e-2, rtol=5e-2, rms_tol=1e-2)


@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 2), H=st.integers(1, 3), L=st.integers(1, 90), Dk=st.integers(1, 12), Dv=st.integers(1, 12),
    C=st.sampled_from([1, 3, 16, 32, 64]), state=st.booleans(), super_rows=st.sampled_from([16, 8192]),
)
def test_fuzz_shapes_against_naive(B, H, L, Dk, Dv, C, state, super_rows, make_inputs, run_with_grads):
    args = make_inputs(B, H, L, Dk, Dv, state=state)
    old = chunk.SUPER_ROWS
    chunk.SUPER_ROWS = super_rows
    try:
        got = run_with_grads(chunked_lightning_attention, *args, block_size=C)
    finally:
        chunk.SUPER_ROWS = old
    _compare(got, run_with_grads(naive_lightning_attention, *args))


def _saved_bytes(L):
    q, k, v = (torch.randn(1, 2, L, 16, requires_grad=True) for _ in range(3))
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        o, _ = chunked_lightning_attention(q, k, v, torch.tensor([0.1, 0.5]), None, True, block_size=64)
    return total, q.numel() * 4


def test_saved_memory_is_linear_in_length():
    # The backward keeps q, k, v and one (Dk × Dv) state per block: no (L × L) or (C × C)-per-block buffers.
    for L in (512, 4096):
        saved, qkv_bytes = _saved_bytes(L)
        states = (L // 64 + 1) * 2 * 16 * 16 * 4
        assert saved <= 3 * qkv_bytes + states + 4096, (L, saved)


@pytest.mark.slow
def test_million_token_recurrence_bf16_stays_accurate():
    # 2^20 tokens of bf16 input, fp32 state; reference: the same (exactly representable) inputs in float64.
    L, H, D, C = 1 << 20, 2, 4, 16
    g = torch.Generator().manual_seed(5)
    q, k, v = ((torch.randn(1, H, L, D, generator=g) * 0.5).bfloat16() for _ in range(3))
    slope = torch.tensor([1e-4, 0.05])  # memory of ~10^4 tokens and ~20 tokens
    old = chunk.SUPER_ROWS
    chunk.SUPER_ROWS = 1 << 16
    try:
        o, fin = chunked_lightning_attention(q, k, v, slope, None, True, block_size=C)
        ref_o, ref_fin = chunked_lightning_attention(q.double(), k.double(), v.double(), slope.double(), None, True,
                                                     block_size=C)
    finally:
        chunk.SUPER_ROWS = old
    assert torch.isfinite(o).all() and torch.isfinite(fin).all()
    assert_close("final state", fin, ref_fin, atol=1e-3, rtol=1e-4, rms_tol=1e-5)
    assert_close("last 4096 outputs", o[:, :, -4096:], ref_o[:, :, -4096:], atol=0.5, rtol=2e-2, rms_tol=5e-3)

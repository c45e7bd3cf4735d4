"""Blocked ("chunked") lightning attention: the fast CPU path, with a memory-linear custom backward.

Sequences are cut into blocks of C tokens (the last block of a sequence may be shorter: m_b ≤ C real tokens, the
rest zero padding). With S_in the recurrent state entering a block, λ = exp(−s), and j, i positions in the block:

    O     = (Q ⊙ λ^{j+1}) S_in  +  ((Q Kᵀ) ⊙ M) V,          M_ji = λ^{j−i} for i ≤ j else 0,
    S_out = λ^{m} S_in + (K ⊙ λ^{m−1−i})ᵀ V.

Every block's intra-block product and local state ((K ⊙ decay)ᵀ V) is one batched matmul over all blocks; the
states entering the blocks follow from a scan over blocks (one fused multiply-add of a (Dk × Dv) state per block);
the inter-block outputs are again one batched matmul. The backward recomputes the (C × C) intra-block matrices
instead of storing them and runs the mirror-image scan for the state gradients, so the saved memory is q, k, v
plus one (Dk × Dv) state per block — linear in L. Accumulation is float32 (float64 for float64 inputs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lumos.ops.lightning.utils import compute_dtype, split_packed

__all__ = ["chunked_lightning_attention", "DEFAULT_BLOCK_SIZE"]

#: Block size chosen by measurement on CPU (see benchmarks/lightning_attention.py, ``--tune``).
DEFAULT_BLOCK_SIZE = 64


@dataclass(frozen=True)
class BlockPlan:
    """Where the blocks of one batch row start and end sequences (``seq`` indexes the row's sequences)."""

    block: int
    lengths: tuple[int, ...]  # real tokens m_b in each block
    first: tuple[bool, ...]  # block starts a sequence (its S_in is that sequence's initial state)
    last: tuple[bool, ...]  # block ends a sequence (its S_out is that sequence's final state)
    seq: tuple[int, ...]  # sequence index of each block
    n_seqs: int
    empty: tuple[int, ...] = ()  # sequences with no tokens (final state = initial state)

    @property
    def n_blocks(self) -> int:
        return len(self.lengths)


def plan_dense(L: int, C: int) -> BlockPlan:
    """One sequence of length L per batch row."""
    n = math.ceil(L / C)
    lengths = tuple([C] * (n - 1) + [L - (n - 1) * C])
    return BlockPlan(C, lengths, (True,) + (False,) * (n - 1), (False,) * (n - 1) + (True,), (0,) * n, 1)


def plan_packed(cu_seqlens: torch.Tensor, C: int) -> tuple[BlockPlan, torch.Tensor]:
    """Blocks for packed sequences (each sequence starts a fresh block) and the block slot of every token (T,)."""
    lengths, first, last, seq, empty, slots = [], [], [], [], [], []
    for n, (a, b) in enumerate(split_packed(cu_seqlens)):
        m = b - a
        if m == 0:
            empty.append(n)
            continue
        nb = math.ceil(m / C)
        base = len(lengths) * C
        slots.append(torch.arange(m) + base)  # token a + j → slot base + j (blocks are contiguous)
        lengths += [C] * (nb - 1) + [m - (nb - 1) * C]
        first += [True] + [False] * (nb - 1)
        last += [False] * (nb - 1) + [True]
        seq += [n] * nb
    n_seqs = len(cu_seqlens) - 1
    slot = torch.cat(slots) if slots else torch.zeros(0, dtype=torch.long)
    plan = BlockPlan(C, tuple(lengths), tuple(first), tuple(last), tuple(seq), n_seqs, tuple(empty))
    return plan, slot


def decay_tables(slope: torch.Tensor, plan: BlockPlan, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Decay factors in ``dtype`` (computed in float64): q (H, C), mask (H, C, C), k (H, n, C), block (H, n)."""
    C, dev = plan.block, slope.device
    s = slope.detach().to(torch.float64)
    j = torch.arange(C, dtype=torch.float64, device=dev)
    m = torch.tensor(plan.lengths, dtype=torch.float64, device=dev)  # (n,)
    diff = j[:, None] - j[None, :]
    mask = torch.where(diff >= 0, torch.exp(-s[:, None, None] * diff.clamp_min(0)), 0.0)
    k_exp = (m[:, None] - 1 - j[None, :]).clamp_min(0)  # (n, C): padded slots get exponent 0 (their k is 0)
    return {
        "q": torch.exp(-s[:, None] * (j + 1)).to(dtype),
        "mask": mask.to(dtype),
        "k": torch.exp(-s[:, None, None] * k_exp).to(dtype),
        "block": torch.exp(-s[:, None] * m).to(dtype),
    }


def _bmm3(a: torch.Tensor, b: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
    """Batched (…, n, p) @ (…, p, m) (+ add) through one 3-D bmm/baddbmm call."""
    lead = a.shape[:-2]
    a3, b3 = a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:])
    if add is None:
        out = torch.bmm(a3, b3)
    else:
        out = torch.baddbmm(add.reshape(-1, *add.shape[-2:]), a3, b3)
    return out.view(*lead, *out.shape[-2:])


def _forward(q, k, v, init, plan: BlockPlan, tab):
    # q, k: (B, H, n, C, Dk); v: (B, H, n, C, Dv); init: (B, N, H, Dk, Dv) — all in the compute dtype.
    kdec = k * tab["k"][None, :, :, :, None]  # K ⊙ λ^{m−1−i}
    local = _bmm3(kdec.transpose(-1, -2), v)  # (B, H, n, Dk, Dv)
    s_in = torch.empty_like(local)
    final = init.clone()
    bdec = tab["block"][:, :, None, None]  # (H, n, 1, 1)
    cur = init[:, 0]
    for b in range(plan.n_blocks):
        if plan.first[b]:
            cur = init[:, plan.seq[b]]
        s_in[:, :, b] = cur
        cur = torch.addcmul(local[:, :, b], cur, bdec[:, b])  # S_out = λ^m S_in + local
        if plan.last[b]:
            final[:, plan.seq[b]] = cur
    del local
    attn = _bmm3(q, k.transpose(-1, -2))  # (B, H, n, C, C)
    attn.mul_(tab["mask"][None, :, None])
    o = _bmm3(q * tab["q"][None, :, None, :, None], s_in)  # inter-block
    o = _bmm3(attn, v, add=o)  # + intra-block
    return o, s_in, final


def _backward(q, k, v, s_in, do, dfinal, plan: BlockPlan, tab):
    # do: (B, H, n, C, Dv); dfinal: (B, N, H, Dk, Dv). Returns dq, dk, dv, dinit.
    qd = q * tab["q"][None, :, None, :, None]
    lg = _bmm3(qd.transpose(-1, -2), do)  # (B, H, n, Dk, Dv): local gradient of S_in
    del qd
    ds_out = torch.empty_like(lg)
    dinit = torch.zeros_like(dfinal)
    for n in plan.empty:
        dinit[:, n] = dfinal[:, n]
    bdec = tab["block"][:, :, None, None]
    cur = dfinal[:, 0]
    for b in reversed(range(plan.n_blocks)):
        if plan.last[b]:
            cur = dfinal[:, plan.seq[b]]
        ds_out[:, :, b] = cur
        cur = torch.addcmul(lg[:, :, b], cur, bdec[:, b])  # dS_in = λ^m dS_out + Qdᵀ dO
        if plan.first[b]:
            dinit[:, plan.seq[b]] = cur
    del lg
    mask = tab["mask"][None, :, None]
    dp = _bmm3(do, v.transpose(-1, -2)).mul_(mask)  # (B, H, n, C, C)
    dq = _bmm3(dp, k, add=_bmm3(do, s_in.transpose(-1, -2)).mul_(tab["q"][None, :, None, :, None]))
    kd = tab["k"][None, :, :, :, None]
    dk = _bmm3(dp.transpose(-1, -2), q, add=_bmm3(v, ds_out.transpose(-1, -2)).mul_(kd))
    del dp
    attn = _bmm3(q, k.transpose(-1, -2)).mul_(mask)
    dv = _bmm3(attn.transpose(-1, -2), do, add=_bmm3(k * kd, ds_out))
    return dq, dk, dv, dinit


class _ChunkedFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, init, plan, tab):
        o, s_in, final = _forward(q, k, v, init, plan, tab)
        ctx.save_for_backward(q, k, v, s_in)
        ctx.plan, ctx.tab = plan, tab
        return o, final

    @staticmethod
    def backward(ctx, do, dfinal):
        q, k, v, s_in = ctx.saved_tensors
        dq, dk, dv, dinit = _backward(q, k, v, s_in, do.contiguous(), dfinal.contiguous(), ctx.plan, ctx.tab)
        return dq, dk, dv, dinit, None, None


def chunked_lightning_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    slope: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
    *,
    block_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Blocked lightning attention (same contract as ``lightning_attention``; inputs are trusted).

    Args:
        q, k: (B, H, L, Dk). v: (B, H, L, Dv). slope: (H,) s_h, decay λ_h = exp(−s_h) (no gradient).
        initial_state: (N, H, Dk, Dv) or None (zeros); N = B, or the number of packed sequences.
        output_final_state: also return S after the last token of each sequence.
        cu_seqlens: (N + 1,) int offsets of packed sequences (then B == 1), or None.
        block_size: tokens per block (default :data:`DEFAULT_BLOCK_SIZE`).

    Returns:
        o (B, H, L, Dv) in v's dtype; final state (N, H, Dk, Dv) in float32 (float64 for float64 inputs) or None.
    """
    C = block_size or DEFAULT_BLOCK_SIZE
    dt = compute_dtype(q)
    B, H, L, Dk = q.shape
    Dv = v.shape[-1]
    qc, kc, vc = q.to(dt), k.to(dt), v.to(dt)
    if cu_seqlens is None:
        plan = plan_dense(L, C)
        pad = plan.n_blocks * C - L

        def to_blocks(x):
            return F.pad(x, (0, 0, 0, pad)).view(B, H, plan.n_blocks, C, x.shape[-1])

        def from_blocks(x):
            return x.reshape(B, H, plan.n_blocks * C, Dv)[:, :, :L]

        n_rows, n_seqs = B, 1
    else:
        plan, slot = plan_packed(cu_seqlens.cpu(), C)
        slot = slot.to(q.device)

        def to_blocks(x):
            out = x.new_zeros(B, H, plan.n_blocks * C, x.shape[-1]).index_copy(2, slot, x)
            return out.view(B, H, plan.n_blocks, C, x.shape[-1])

        def from_blocks(x):
            return x.reshape(B, H, plan.n_blocks * C, Dv).index_select(2, slot)

        n_rows, n_seqs = 1, plan.n_seqs
    if initial_state is None:
        init = q.new_zeros(n_rows, n_seqs, H, Dk, Dv, dtype=dt)
    else:
        init = initial_state.to(dt).reshape(n_rows, n_seqs, H, Dk, Dv)
    tab = decay_tables(slope, plan, dt)
    o, final = _ChunkedFunction.apply(to_blocks(qc), to_blocks(kc), to_blocks(vc), init, plan, tab)
    o = from_blocks(o).to(v.dtype)
    final = final.reshape(n_rows * n_seqs, H, Dk, Dv) if output_final_state else None
    return o, final

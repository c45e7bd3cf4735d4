"""Blocked ("chunked") lightning attention: the fast CPU path, with a memory-linear custom backward.

Sequences are cut into blocks of C tokens (the last block of a sequence may be shorter: m_b ≤ C real tokens, the
rest zero padding). With S_in the recurrent state entering a block, λ = exp(−s), and j, i positions in the block:

    O     = (Q ⊙ λ^{j+1}) S_in  +  ((Q Kᵀ) ⊙ M) V,          M_ji = λ^{j−i} for i ≤ j else 0,
    S_out = λ^{m} S_in + (K ⊙ λ^{m−1−i})ᵀ V.

The blocks are streamed in spans of a few thousand rows (so the (C × C) temporaries stay in cache): per span, all
local states (K ⊙ decay)ᵀ V are one batched matmul, the states entering the span's blocks follow by a scan (one
fused multiply-add of a (Dk × Dv) state per block — cheap next to the matmuls), and the intra- and inter-block
outputs are two more batched matmuls. The backward recomputes the (C × C) intra-block matrices instead of storing
them and runs the mirror-image scan for the state gradients; it saves only q, k, v (the inputs) and one state per
block — linear in L. Accumulation is float32 (float64 for float64 inputs), whatever the input dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lumos.ops.lightning.utils import compute_dtype, split_packed

__all__ = ["chunked_lightning_attention", "DEFAULT_BLOCK_SIZE", "SUPER_ROWS"]

#: Block size chosen by measurement on CPU (``python benchmarks/lightning_attention.py --tune``).
DEFAULT_BLOCK_SIZE = 64
#: Rows (blocks × B·H × C tokens) processed per batched call.
SUPER_ROWS = 8192


@dataclass(frozen=True)
class BlockPlan:
    """How blocks tile the token axis. Dense: one sequence per batch row; packed: B = 1 and sequences given by
    ``cu_seqlens``, each starting a fresh block. ``seq`` indexes the sequence (initial/final state) of a block."""

    block: int
    starts: tuple[int, ...]  # token index of each block's first token
    lengths: tuple[int, ...]  # real tokens m_b in each block
    first: tuple[bool, ...]  # block starts a sequence (its S_in is that sequence's initial state)
    last: tuple[bool, ...]  # block ends a sequence (its S_out is that sequence's final state)
    seq: tuple[int, ...]
    n_seqs: int
    empty: tuple[int, ...] = ()  # sequences with no tokens (final state = initial state)
    packed: bool = False

    @property
    def n_blocks(self) -> int:
        return len(self.lengths)


def plan_dense(L: int, C: int) -> BlockPlan:
    """One sequence of length L per batch row."""
    n = math.ceil(L / C)
    return BlockPlan(C, tuple(range(0, L, C)), tuple([C] * (n - 1) + [L - (n - 1) * C]),
                     (True,) + (False,) * (n - 1), (False,) * (n - 1) + (True,), (0,) * n, 1)


def plan_packed(cu_seqlens: torch.Tensor, C: int) -> BlockPlan:
    """Blocks for sequences packed along L with offsets ``cu_seqlens`` (N + 1,)."""
    starts, lengths, first, last, seq, empty = [], [], [], [], [], []
    for n, (a, b) in enumerate(split_packed(cu_seqlens)):
        if b == a:
            empty.append(n)
            continue
        nb = math.ceil((b - a) / C)
        starts += range(a, b, C)
        lengths += [C] * (nb - 1) + [b - a - (nb - 1) * C]
        first += [True] + [False] * (nb - 1)
        last += [False] * (nb - 1) + [True]
        seq += [n] * nb
    return BlockPlan(C, tuple(starts), tuple(lengths), tuple(first), tuple(last), tuple(seq),
                     len(cu_seqlens) - 1, tuple(empty), packed=True)


@dataclass
class Tables:
    """Decay factors in the compute dtype (made in float64): q (H, C, 1) = λ^{j+1}; mask (H, C, C) = λ^{j−i}
    (i ≤ j, else 0); k (n, H, C, 1) = λ^{m_b−1−i} (padded slots: 1, their k is 0); block (n, H, 1, 1) = λ^{m_b}."""

    q: torch.Tensor
    mask: torch.Tensor
    k: torch.Tensor
    block: torch.Tensor


def decay_tables(slope: torch.Tensor, plan: BlockPlan, dtype: torch.dtype) -> Tables:
    C, dev = plan.block, slope.device
    s = slope.detach().to(torch.float64)[:, None, None]  # (H, 1, 1)
    j = torch.arange(C, dtype=torch.float64, device=dev)
    m = torch.tensor(plan.lengths, dtype=torch.float64, device=dev)  # (n,)
    diff = j[:, None] - j[None, :]
    mask = torch.where(diff >= 0, torch.exp(-s * diff.clamp_min(0)), 0.0)
    k_exp = (m[:, None] - 1 - j[None, :]).clamp_min(0)  # (n, C)
    return Tables(
        q=torch.exp(-s * (j + 1)[:, None]).to(dtype),
        mask=mask.to(dtype),
        k=torch.exp(-s[None] * k_exp[:, None, :, None]).to(dtype),
        block=torch.exp(-s[None] * m[:, None, None, None]).to(dtype),
    )


@dataclass
class _Ctx:
    plan: BlockPlan
    tab: Tables
    B: int
    spans: list[tuple[int, int]]
    idx: tuple[torch.Tensor, torch.Tensor] | None  # packed: (block, position) of every token


def _span_tokens(plan: BlockPlan, a: int, b: int) -> tuple[int, int, int]:
    """First token, end token and number of leading full blocks of span [a, b) (dense plans)."""
    t0, t1 = plan.starts[a], plan.starts[b - 1] + plan.lengths[b - 1]
    full = (b - a) if plan.lengths[b - 1] == plan.block else (b - a - 1)
    return t0, t1, full


def _gather(x3: torch.Tensor, c: _Ctx, a: int, b: int, dt: torch.dtype) -> torch.Tensor:
    """Blocks [a, b) of x3 (BH, L, D) as a zero-padded (b − a, BH, C, D) tensor in dtype ``dt``."""
    plan, C = c.plan, c.plan.block
    BH, _, D = x3.shape
    buf = x3.new_empty(b - a, BH, C, D, dtype=dt)
    t0, t1, full = _span_tokens(plan, a, b)
    if c.idx is not None:
        blk, pos = c.idx
        buf.zero_()
        buf[blk[t0:t1] - a, :, pos[t0:t1]] = x3[:, t0:t1].transpose(0, 1).to(dt)
        return buf
    if full:
        buf[:full].copy_(x3[:, t0 : t0 + full * C].view(BH, full, C, D).transpose(0, 1))
    if full < b - a:
        m = t1 - t0 - full * C
        buf[full, :, :m].copy_(x3[:, t0 + full * C : t1])
        buf[full, :, m:].zero_()
    return buf


def _scatter(out3: torch.Tensor, buf: torch.Tensor, c: _Ctx, a: int, b: int) -> None:
    """Write the real rows of blocks [a, b) from buf (b − a, BH, C, D) into out3 (BH, L, D)."""
    plan, C = c.plan, c.plan.block
    BH, _, D = out3.shape
    t0, t1, full = _span_tokens(plan, a, b)
    if c.idx is not None:
        blk, pos = c.idx
        out3[:, t0:t1] = buf[blk[t0:t1] - a, :, pos[t0:t1]].transpose(0, 1)
        return
    if full:
        out3[:, t0 : t0 + full * C].view(BH, full, C, D).copy_(buf[:full].transpose(0, 1))
    if full < b - a:
        out3[:, t0 + full * C : t1].copy_(buf[full, :, : t1 - t0 - full * C])


def _forward(q3, k3, v3, init, c: _Ctx, keep_states: bool):
    """q3, k3 (BH, L, Dk), v3 (BH, L, Dv) in the input dtype; init (N, BH, Dk, Dv) in the compute dtype.

    Returns o3 (BH, L, Dv) in v's dtype, F (n + 1, BH, Dk, Dv) with F[b] = state entering block b (None unless
    ``keep_states``), and the final states (N, BH, Dk, Dv)."""
    plan, tab, B = c.plan, c.tab, c.B
    n, C, dt = plan.n_blocks, plan.block, init.dtype
    BH, L, Dk = q3.shape
    Dv, H = v3.shape[-1], BH // B
    o3 = v3.new_empty(BH, L, Dv)
    F = q3.new_empty(n + 1, BH, Dk, Dv, dtype=dt) if keep_states else None
    final = init.clone()
    cur = init[plan.seq[0]]
    for a, b in c.spans:
        g = b - a
        qb, kb, vb = (_gather(t, c, a, b, dt) for t in (q3, k3, v3))
        Fs = F[a : b + 1] if keep_states else q3.new_empty(g + 1, BH, Dk, Dv, dtype=dt)
        kt = (kb.view(g, B, H, C, Dk) * tab.k[a:b, None]).view(-1, C, Dk).transpose(1, 2)
        torch.bmm(kt, vb.view(-1, C, Dv), out=Fs[1:].view(-1, Dk, Dv))  # local states
        if a == 0 or not keep_states:
            Fs[0] = cur
        for j in range(g):  # scan: Fs[j + 1] = λ^{m} Fs[j] + local
            if a + j > 0 and plan.first[a + j]:
                final[plan.seq[a + j - 1]] = Fs[j]
                Fs[j] = init[plan.seq[a + j]]
            Fs[j + 1].view(B, H, Dk, Dv).addcmul_(Fs[j].view(B, H, Dk, Dv), tab.block[a + j])
        cur = Fs[g]
        q3b, k3b, v3b = qb.view(-1, C, Dk), kb.view(-1, C, Dk), vb.view(-1, C, Dv)
        ob = torch.bmm(q3b, Fs[:g].reshape(-1, Dk, Dv))  # inter-block: (Q S_in) ⊙ λ^{j+1}
        ob.view(g, B, H, C, Dv).mul_(tab.q)
        A = torch.bmm(q3b, k3b.transpose(1, 2))
        A.view(g, B, H, C, C).mul_(tab.mask)
        ob.baddbmm_(A, v3b)  # + intra-block ((Q Kᵀ) ⊙ M) V
        _scatter(o3, ob.view(g, BH, C, Dv), c, a, b)
    final[plan.seq[n - 1]] = cur
    return o3, F, final


def _state_grads(E, dfinal, c: _Ctx):
    """E[b] holds (Q_b ⊙ λ^{j+1})ᵀ dO_b (b < n). Reverse scan: afterwards E[b + 1] = ∂/∂S_out_b. Returns ∂/∂init."""
    plan, B = c.plan, c.B
    n, BH, Dk, Dv = E.shape[0] - 1, *E.shape[1:]
    H = BH // B
    dinit = torch.zeros_like(dfinal)
    for e in plan.empty:
        dinit[e] = dfinal[e]
    E[n] = dfinal[plan.seq[n - 1]]
    for b in reversed(range(n)):
        if b < n - 1 and plan.last[b]:
            dinit[plan.seq[b + 1]] = E[b + 1]
            E[b + 1] = dfinal[plan.seq[b]]
        E[b].view(B, H, Dk, Dv).addcmul_(E[b + 1].view(B, H, Dk, Dv), c.tab.block[b])  # ∂S_in = λ^m ∂S_out + QdᵀdO
    dinit[plan.seq[0]] = E[0]
    return dinit


def _backward(q3, k3, v3, do3, F, dfinal, c: _Ctx):
    plan, tab, B = c.plan, c.tab, c.B
    n, C, dt = plan.n_blocks, plan.block, F.dtype
    BH, L, Dk = q3.shape
    Dv, H = v3.shape[-1], BH // B
    E = F.new_empty(n + 1, BH, Dk, Dv)
    for a, b in c.spans:
        g = b - a
        qd = (_gather(q3, c, a, b, dt).view(g, B, H, C, Dk) * tab.q).view(-1, C, Dk)
        torch.bmm(qd.transpose(1, 2), _gather(do3, c, a, b, dt).view(-1, C, Dv), out=E[a:b].view(-1, Dk, Dv))
    dinit = _state_grads(E, dfinal, c)
    dq3, dk3, dv3 = torch.empty_like(q3), torch.empty_like(k3), torch.empty_like(v3)
    for a, b in c.spans:
        g = b - a
        qb, kb, vb, dob = (_gather(t, c, a, b, dt) for t in (q3, k3, v3, do3))
        q, k, v, do = qb.view(-1, C, Dk), kb.view(-1, C, Dk), vb.view(-1, C, Dv), dob.view(-1, C, Dv)
        s_in, ds_out = F[a:b].reshape(-1, Dk, Dv), E[a + 1 : b + 1].reshape(-1, Dk, Dv)
        dP = torch.bmm(do, v.transpose(1, 2))
        dP.view(g, B, H, C, C).mul_(tab.mask)
        dq = torch.bmm(do, s_in.transpose(1, 2))
        dq.view(g, B, H, C, Dk).mul_(tab.q)
        dq.baddbmm_(dP, k)
        _scatter(dq3, dq.view(g, BH, C, Dk), c, a, b)
        dk = torch.bmm(v, ds_out.transpose(1, 2))
        dk.view(g, B, H, C, Dk).mul_(tab.k[a:b, None])
        dk.baddbmm_(dP.transpose(1, 2), q)
        _scatter(dk3, dk.view(g, BH, C, Dk), c, a, b)
        A = torch.bmm(q, k.transpose(1, 2))
        A.view(g, B, H, C, C).mul_(tab.mask)
        dv = torch.bmm((kb.view(g, B, H, C, Dk) * tab.k[a:b, None]).view(-1, C, Dk), ds_out)
        dv.baddbmm_(A.transpose(1, 2), do)
        _scatter(dv3, dv.view(g, BH, C, Dv), c, a, b)
    return dq3, dk3, dv3, dinit


class _ChunkedFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q3, k3, v3, init, c: _Ctx):
        o3, F, final = _forward(q3, k3, v3, init, c, keep_states=True)
        ctx.save_for_backward(q3, k3, v3, F)
        ctx.c = c
        return o3, final

    @staticmethod
    def backward(ctx, do3, dfinal):
        q3, k3, v3, F = ctx.saved_tensors
        dq, dk, dv, dinit = _backward(q3, k3, v3, do3.contiguous(), F, dfinal.to(F.dtype).contiguous(), ctx.c)
        return dq, dk, dv, dinit, None


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
    if cu_seqlens is None:
        plan, idx = plan_dense(L, C), None
    else:
        plan = plan_packed(cu_seqlens.cpu(), C)
        slot = torch.cat([torch.arange(m) + i * C for i, m in enumerate(plan.lengths)]).to(q.device)
        idx = (torch.div(slot, C, rounding_mode="floor"), slot % C)
    per_block = max(1, SUPER_ROWS // (B * H * C))
    spans = [(a, min(a + per_block, plan.n_blocks)) for a in range(0, plan.n_blocks, per_block)]
    c = _Ctx(plan, decay_tables(slope, plan, dt), B, spans, idx)
    n_seqs = plan.n_seqs if plan.packed else 1
    if initial_state is None:
        init = q.new_zeros(n_seqs, B * H, Dk, Dv, dtype=dt)
    else:
        init = initial_state.to(dt).reshape(n_seqs, B * H, Dk, Dv)
    q3, k3, v3 = q.reshape(B * H, L, Dk), k.reshape(B * H, L, Dk), v.reshape(B * H, L, Dv)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, init)):
        o3, final = _ChunkedFunction.apply(q3, k3, v3, init, c)
    else:
        o3, _, final = _forward(q3, k3, v3, init, c, keep_states=False)
    final = final.reshape(-1, H, Dk, Dv) if output_final_state else None
    return o3.view(B, H, L, Dv), final

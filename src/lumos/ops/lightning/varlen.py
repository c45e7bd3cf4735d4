"""The blocked path's engine, for dense rows and packed (variable-length) sequences alike: a block plan (over
``cu_seqlens`` when packed) and a span-streamed forward/backward that gathers the blocks of each span into a
zero-padded, contiguous (B·H, blocks, C, D) buffer.

Every sequence starts a fresh block, so no block straddles two sequences; the state scan resets to a sequence's
initial state at its first block and hands out its final state at its last block — no state leaks across
sequences. The formulas are in :mod:`lumos.ops.lightning.chunk`. The backward is one reverse pass over the spans:
per span it recomputes the intra-block matrices, runs the reverse state-gradient scan and writes dq, dk, dv.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lumos.ops.lightning.utils import split_packed

__all__ = ["BlockPlan", "plan_dense", "plan_packed", "Tables", "decay_tables", "PackedCtx", "packed_forward",
           "packed_backward"]


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
class PackedCtx:
    """Everything the blocked path needs besides the tensors. ``spans`` are ranges of blocks processed per call."""

    plan: BlockPlan
    tab: Tables
    B: int
    spans: list[tuple[int, int]]
    slot: torch.Tensor | None  # packed: block slot (block · C + position) of every token; None for dense rows

    def state_offsets(self, BH: int, Dk: int, Dv: int) -> list[int]:
        """Offset of each span's (BH, blocks, Dk, Dv) slice in the flat buffer of per-block states."""
        offs, o = [], 0
        for a, b in self.spans:
            offs.append(o)
            o += BH * (b - a) * Dk * Dv
        return offs + [o]


def _span_tokens(plan: BlockPlan, a: int, b: int) -> tuple[int, int]:
    return plan.starts[a], plan.starts[b - 1] + plan.lengths[b - 1]


def _gather(x3: torch.Tensor, c: PackedCtx, a: int, b: int) -> torch.Tensor:
    """Blocks [a, b) of x3 (BH, L, D) as a zero-padded, contiguous (BH, b − a, C, D) tensor."""
    C, (t0, t1) = c.plan.block, _span_tokens(c.plan, a, b)
    BH, _, D = x3.shape
    buf = x3.new_empty(BH, (b - a) * C, D)
    if c.slot is None:  # dense: the span's tokens are contiguous, only its last block may be partial
        buf[:, : t1 - t0].copy_(x3[:, t0:t1])
        buf[:, t1 - t0 :].zero_()
    else:
        buf.zero_()
        buf.index_copy_(1, c.slot[t0:t1] - a * C, x3[:, t0:t1])
    return buf.view(BH, b - a, C, D)


def _scatter(out3: torch.Tensor, buf: torch.Tensor, c: PackedCtx, a: int, b: int) -> None:
    """Write the real rows of blocks [a, b) from buf (BH, b − a, C, D) into out3 (BH, L, D)."""
    t0, t1 = _span_tokens(c.plan, a, b)
    flat = buf.view(buf.shape[0], -1, buf.shape[-1])
    if c.slot is None:
        out3[:, t0:t1].copy_(flat[:, : t1 - t0])
    else:
        out3[:, t0:t1] = flat.index_select(1, c.slot[t0:t1] - c.plan.block * a)


def _span_scan(local, Fs, cur, final, init, c: PackedCtx, a: int):
    """Fill Fs (BH, g, Dk, Dv) with the states entering blocks a.. of the span, starting from ``cur``;
    returns the state leaving the span. Resets to a sequence's initial state at its first block."""
    plan, B = c.plan, c.B
    BH, g, Dk, Dv = local.shape
    H = BH // B
    if a > 0 and plan.first[a]:
        final[plan.seq[a - 1]] = cur
        cur = init[plan.seq[a]]
    Fs[:, 0] = cur
    for j in range(g):  # S_in of block j + 1 = λ^{m_j} S_in_j + local_j
        nxt = Fs[:, j + 1] if j + 1 < g else torch.empty_like(cur)
        torch.addcmul(local[:, j].view(B, H, Dk, Dv), Fs[:, j].view(B, H, Dk, Dv), c.tab.block[a + j],
                      out=nxt.view(B, H, Dk, Dv))
        if j + 1 < g and plan.first[a + j + 1]:
            final[plan.seq[a + j]] = nxt
            nxt.copy_(init[plan.seq[a + j + 1]])
    return nxt


def packed_forward(q3, k3, v3, init, c: PackedCtx, keep_states: bool):
    """q3, k3 (BH, L, Dk), v3 (BH, L, Dv), init (N, BH, Dk, Dv), all in the compute dtype.

    Returns o3 (BH, L, Dv); the flat buffer of the states entering every block (per span a (BH, g, Dk, Dv) slice,
    see :meth:`PackedCtx.state_offsets`; None unless ``keep_states``); the final states (N, BH, Dk, Dv)."""
    plan, tab, B = c.plan, c.tab, c.B
    C = plan.block
    BH, L, Dk = q3.shape
    Dv, H = v3.shape[-1], BH // B
    o3 = q3.new_empty(BH, L, Dv)
    offs = c.state_offsets(BH, Dk, Dv)
    F = q3.new_empty(offs[-1]) if keep_states else None
    final = init.clone()
    cur = init[plan.seq[0]]
    for (a, b), off in zip(c.spans, offs):
        g = b - a
        qb, kb, vb = (_gather(t, c, a, b) for t in (q3, k3, v3))
        kd = tab.k[a:b].transpose(0, 1)  # (H, g, C, 1)
        local = torch.bmm((kb.view(B, H, g, C, Dk) * kd).view(-1, C, Dk).transpose(1, 2), vb.view(-1, C, Dv))
        Fs = F[off : off + BH * g * Dk * Dv].view(BH, g, Dk, Dv) if F is not None else local.new_empty(BH, g, Dk, Dv)
        cur = _span_scan(local.view(BH, g, Dk, Dv), Fs, cur, final, init, c, a)
        qf = qb.view(-1, C, Dk)
        ob = torch.bmm(qf, Fs.view(-1, Dk, Dv))  # inter-block: (Q S_in) ⊙ λ^{j+1}
        ob.view(B, H, g, C, Dv).mul_(tab.q[:, None])
        A = torch.bmm(qf, kb.view(-1, C, Dk).transpose(1, 2))
        A.view(B, H, g, C, C).mul_(tab.mask[:, None])
        ob.baddbmm_(A, vb.view(-1, C, Dv))  # + intra-block ((Q Kᵀ) ⊙ M) V
        _scatter(o3, ob.view(BH, g, C, Dv), c, a, b)
    final[plan.seq[-1]] = cur
    return o3, F, final


def _span_grad_scan(lg, dS, dcur, dfinal, dinit, c: PackedCtx, a: int):
    """Reverse scan over the span's blocks: dS[:, j] = ∂/∂S_out of block a + j, from ``dcur`` (∂/∂S_out of its
    last block); returns ∂/∂S_in of block a. A sequence's end takes its final-state gradient; the gradient
    reaching a sequence's first block is its initial state's."""
    plan, B = c.plan, c.B
    BH, g, Dk, Dv = lg.shape
    H, n = BH // B, plan.n_blocks
    b = a + g
    if plan.last[b - 1] and b - 1 < n - 1:
        dinit[plan.seq[b]] = dcur
        dcur = dfinal[plan.seq[b - 1]]
    dS[:, g - 1] = dcur
    for j in reversed(range(g)):  # ∂S_in_j = λ^{m_j} ∂S_out_j + (Q_j ⊙ λ^{i+1})ᵀ dO_j = ∂S_out_{j−1}
        prev = dS[:, j - 1] if j > 0 else torch.empty_like(dcur)
        torch.addcmul(lg[:, j].view(B, H, Dk, Dv), dS[:, j].view(B, H, Dk, Dv), c.tab.block[a + j],
                      out=prev.view(B, H, Dk, Dv))
        if j > 0 and plan.last[a + j - 1]:
            dinit[plan.seq[a + j]] = prev
            prev.copy_(dfinal[plan.seq[a + j - 1]])
    return prev


def packed_backward(q3, k3, v3, do3, F, dfinal, c: PackedCtx):
    """One reverse pass over the spans; recomputes the intra-block matrices. Returns dq3, dk3, dv3, dinit."""
    plan, tab, B = c.plan, c.tab, c.B
    C = plan.block
    BH, L, Dk = q3.shape
    Dv, H = v3.shape[-1], BH // B
    dq3, dk3, dv3 = torch.empty_like(q3), torch.empty_like(k3), torch.empty_like(v3)
    dinit = torch.zeros_like(dfinal)
    for e in plan.empty:
        dinit[e] = dfinal[e]
    offs = c.state_offsets(BH, Dk, Dv)
    dcur = dfinal[plan.seq[-1]]
    for (a, b), off in reversed(list(zip(c.spans, offs))):
        g = b - a
        qb, kb, vb, dob = (_gather(t, c, a, b) for t in (q3, k3, v3, do3))
        q, k, v, do = qb.view(-1, C, Dk), kb.view(-1, C, Dk), vb.view(-1, C, Dv), dob.view(-1, C, Dv)
        qd = (qb.view(B, H, g, C, Dk) * tab.q[:, None]).view(-1, C, Dk)
        lg = torch.bmm(qd.transpose(1, 2), do).view(BH, g, Dk, Dv)  # (Q ⊙ λ^{i+1})ᵀ dO per block
        dS = torch.empty_like(lg)
        dcur = _span_grad_scan(lg, dS, dcur, dfinal, dinit, c, a)
        s_in, ds_out = F[off : off + BH * g * Dk * Dv].view(-1, Dk, Dv), dS.view(-1, Dk, Dv)
        mask, kd = tab.mask[:, None], tab.k[a:b].transpose(0, 1)
        dP = torch.bmm(do, v.transpose(1, 2))
        dP.view(B, H, g, C, C).mul_(mask)
        dq = torch.bmm(do, s_in.transpose(1, 2))
        dq.view(B, H, g, C, Dk).mul_(tab.q[:, None])
        _scatter(dq3, dq.baddbmm_(dP, k).view(BH, g, C, Dk), c, a, b)
        dk = torch.bmm(v, ds_out.transpose(1, 2))
        dk.view(B, H, g, C, Dk).mul_(kd)
        _scatter(dk3, dk.baddbmm_(dP.transpose(1, 2), q).view(BH, g, C, Dk), c, a, b)
        A = torch.bmm(q, k.transpose(1, 2))
        A.view(B, H, g, C, C).mul_(mask)
        dv = torch.bmm((kb.view(B, H, g, C, Dk) * kd).view(-1, C, Dk), ds_out)
        _scatter(dv3, dv.baddbmm_(A.transpose(1, 2), do).view(BH, g, C, Dv), c, a, b)
    dinit[plan.seq[0]] = dcur
    return dq3, dk3, dv3, dinit

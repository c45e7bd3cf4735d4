"""Blocked ("chunked") lightning attention: the fast CPU path, with a memory-linear custom backward.

Sequences are cut into blocks of C tokens (the last block of a sequence may be shorter: m_b ≤ C real tokens, the
rest zero padding). With S_in the recurrent state entering a block, λ = exp(−s), and j, i positions in the block:

    O     = (Q ⊙ λ^{j+1}) S_in  +  ((Q Kᵀ) ⊙ M) V,          M_ji = λ^{j−i} for i ≤ j else 0,
    S_out = λ^{m} S_in + (K ⊙ λ^{m−1−i})ᵀ V.

The blocks are streamed in spans of about SUPER_ROWS token rows (all B·H rows of a few blocks), gathered into a
small zero-padded buffer so that every temporary stays in cache: per span, the local states (K ⊙ decay)ᵀ V are one
batched matmul, the states entering its blocks follow by a scan (one fused multiply-add of all (B·H) states per
block — cheap next to the matmuls), and the inter- plus intra-block outputs are two more batched matmuls. (An
in-place variant on zero-copy per-row views measured ~20% slower on CPU: it streams the output and the states
through memory several times.) Dense rows and packed sequences share this code
(:mod:`lumos.ops.lightning.varlen`). The backward recomputes the (C × C) intra-block matrices instead of storing
them and runs the mirror-image scan for the state gradients; it saves only q, k, v (in the compute dtype: the
inputs themselves for contiguous float32) and one (Dk × Dv) state per block — linear in L. Accumulation is float32 (float64 for float64 inputs), whatever the input dtype.
"""

from __future__ import annotations

import torch

from lumos.ops.lightning.utils import compute_dtype
from lumos.ops.lightning.varlen import (
    PackedCtx,
    decay_tables,
    packed_backward,
    packed_forward,
    plan_dense,
    plan_packed,
)

__all__ = ["chunked_lightning_attention", "DEFAULT_BLOCK_SIZE", "SUPER_ROWS"]

#: Block size chosen by measurement on CPU (``python benchmarks/lightning_attention.py --tune``).
DEFAULT_BLOCK_SIZE = 64
#: Token rows (blocks × B·H × C) per batched call and per thread, so the temporaries stay cache-sized while
#: each thread gets enough work per call (measured single-threaded with ``--tune``: 1024–2048 best).
SUPER_ROWS = 2048


class _ChunkedFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q3, k3, v3, init, c):
        o3, F, final = packed_forward(q3, k3, v3, init, c, keep_states=True)
        ctx.save_for_backward(q3, k3, v3, F)
        ctx.c = c
        return o3, final

    @staticmethod
    def backward(ctx, do3, dfinal):
        q3, k3, v3, F = ctx.saved_tensors
        dq, dk, dv, dinit = packed_backward(q3, k3, v3, do3.contiguous(), F, dfinal.to(F.dtype).contiguous(), ctx.c)
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
    n_seqs = 1 if cu_seqlens is None else cu_seqlens.numel() - 1
    if initial_state is None:
        init = q.new_zeros(n_seqs, B * H, Dk, Dv, dtype=dt)
    else:
        init = initial_state.to(dt).reshape(n_seqs, B * H, Dk, Dv)
    q3, k3, v3 = (t.reshape(B * H, L, t.shape[-1]).to(dt).contiguous() for t in (q, k, v))
    c = _context(slope, B, H, L, C, cu_seqlens, q.device, dt)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, init)):
        o3, final = _ChunkedFunction.apply(q3, k3, v3, init, c)
    else:
        o3, _, final = packed_forward(q3, k3, v3, init, c, keep_states=False)
    final = final.reshape(-1, H, Dk, Dv) if output_final_state else None
    return o3.view(B, H, L, Dv).to(v.dtype), final


def _context(slope, B, H, L, C, cu_seqlens, device, dt) -> PackedCtx:
    """Block plan (dense rows or packed sequences), decay tables and the spans of blocks processed per call."""
    if cu_seqlens is None:
        plan, idx = plan_dense(L, C), None
    else:
        plan = plan_packed(cu_seqlens.cpu(), C)
        idx = torch.cat([torch.arange(m) + i * C for i, m in enumerate(plan.lengths)]).to(device)
    per_span = max(1, SUPER_ROWS * max(1, torch.get_num_threads()) // (B * H * C))
    spans = [(a, min(a + per_span, plan.n_blocks)) for a in range(0, plan.n_blocks, per_span)]
    return PackedCtx(plan, decay_tables(slope, plan, dt), B, spans, idx)

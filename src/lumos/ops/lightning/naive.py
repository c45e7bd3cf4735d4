"""Quadratic (parallel, masked) form of lightning attention — the oracle.

For every head h with slope s_h and decay λ_h = exp(−s_h) it evaluates the closed form of the recurrence

    S_t = λ_h · S_{t−1} + k_tᵀ v_t,      o_t = q_t · S_t,      S_{−1} = initial_state,

i.e. o_t = Σ_{i≤t} λ^{t−i} (q_t · k_i) v_i + λ^{t+1} q_t · S_{−1} and S_final = λ^L S_{−1} + Σ_i λ^{L−1−i} k_iᵀ v_i,
by materialising the (L × L) decay mask. O(L²) time and memory; works in float64. Inputs are trusted (the public
:func:`lumos.ops.lightning_attention` validates them).
"""

from __future__ import annotations

import torch

from lumos.ops.lightning.utils import compute_dtype, per_sequence

__all__ = ["naive_lightning_attention"]


def _naive_one(q, k, v, slope, s0):
    # q, k: (B, H, L, Dk); v: (B, H, L, Dv); slope (H,); s0 (B, H, Dk, Dv) or None; all in the compute dtype.
    L = q.shape[-2]
    s = slope.to(q.dtype)[:, None, None]  # (H, 1, 1)
    t = torch.arange(L, device=q.device, dtype=q.dtype)
    diff = t[:, None] - t[None, :]  # (L, L): t − i
    mask = torch.where(diff >= 0, torch.exp(-s * diff.clamp_min(0)), torch.zeros((), dtype=q.dtype, device=q.device))
    o = ((q @ k.transpose(-1, -2)) * mask) @ v  # (B, H, L, Dv)
    k_decay = torch.exp(-s * (L - 1 - t)[:, None])  # (H, L, 1): λ^{L−1−i}
    final = (k * k_decay).transpose(-1, -2) @ v  # (B, H, Dk, Dv)
    if s0 is not None:
        q_decay = torch.exp(-s * (t + 1)[:, None])  # (H, L, 1): λ^{t+1}
        o = o + (q * q_decay) @ s0
        final = final + torch.exp(-s * L) * s0
    return o, final


def naive_lightning_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    slope: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Lightning attention by the quadratic masked form (oracle; same contract as ``lightning_attention``).

    Args:
        q, k: (B, H, L, Dk). v: (B, H, L, Dv). slope: (H,) s_h, decay λ_h = exp(−s_h).
        initial_state: (N, H, Dk, Dv) or None (zeros); N = B, or the number of packed sequences.
        output_final_state: also return S after the last token of each sequence.
        cu_seqlens: (N + 1,) int offsets of packed sequences (then B == 1), or None.

    Returns:
        o (B, H, L, Dv) in v's dtype; final state (N, H, Dk, Dv) in float32 (float64 for float64 inputs) or None.
    """
    dt = compute_dtype(q)
    qc, kc, vc = q.to(dt), k.to(dt), v.to(dt)
    s0 = None if initial_state is None else initial_state.to(dt)
    o, final = per_sequence(lambda q_, k_, v_, s0_: _naive_one(q_, k_, v_, slope, s0_), qc, kc, vc, s0, cu_seqlens)
    return o.to(v.dtype), (final if output_final_state else None)

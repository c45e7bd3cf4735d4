"""Token-by-token recurrence of lightning attention — second oracle and the decode path.

Per head h (λ_h = exp(−s_h)):  S_t = λ_h · S_{t−1} + k_tᵀ v_t,   o_t = q_t · S_t,   S_{−1} = initial_state (or 0).
The state is kept in float32 (float64 for float64 inputs) whatever the input dtype. Inputs are trusted.
"""

from __future__ import annotations

import torch

from lumos.ops.lightning.utils import compute_dtype, per_sequence

__all__ = ["recurrent_lightning_attention", "recurrent_step"]


def recurrent_step(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slope: torch.Tensor, state: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the recurrence over the T tokens of q, k (B, H, T, Dk), v (B, H, T, Dv) from ``state`` (B, H, Dk, Dv).

    Functional (``state`` is not modified). Returns o (B, H, T, Dv) in v's dtype and the new state in the
    compute dtype (float32, or float64 for float64 inputs).
    """
    dt = compute_dtype(q)
    B, H, T, Dk = q.shape
    Dv = v.shape[-1]
    lam = torch.exp(-slope.to(torch.float64)).to(dt)[:, None, None]  # (H, 1, 1)
    S = torch.zeros(B, H, Dk, Dv, dtype=dt, device=q.device) if state is None else state.to(dt)
    qc, kc, vc = q.to(dt), k.to(dt), v.to(dt)
    outs = []
    for t in range(T):
        S = lam * S + kc[:, :, t, :, None] * vc[:, :, t, None, :]  # (B, H, Dk, Dv)
        outs.append((qc[:, :, t, None, :] @ S).squeeze(-2))  # (B, H, Dv)
    o = torch.stack(outs, dim=2) if outs else vc.new_zeros(B, H, 0, Dv)
    return o.to(v.dtype), S


def recurrent_lightning_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    slope: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Lightning attention by the token loop (oracle; same contract as ``lightning_attention``).

    Args:
        q, k: (B, H, L, Dk). v: (B, H, L, Dv). slope: (H,) s_h, decay λ_h = exp(−s_h).
        initial_state: (N, H, Dk, Dv) or None (zeros); N = B, or the number of packed sequences.
        output_final_state: also return S after the last token of each sequence.
        cu_seqlens: (N + 1,) int offsets of packed sequences (then B == 1), or None.

    Returns:
        o (B, H, L, Dv) in v's dtype; final state (N, H, Dk, Dv) in float32 (float64 for float64 inputs) or None.
    """
    o, final = per_sequence(lambda q_, k_, v_, s0_: recurrent_step(q_, k_, v_, slope, s0_), q, k, v, initial_state,
                            cu_seqlens)
    return o, (final if output_final_state else None)

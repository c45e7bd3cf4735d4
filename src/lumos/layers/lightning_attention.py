"""MiniMax lightning-attention layer (release ``MiniMaxText01LightningAttention`` / transformers
``MiniMaxLightningAttention``).

x → qkv_proj → SiLU → per-head interleaved split [q_h, k_h, v_h] → lightning attention (decay λ_h = exp(−rate_h))
→ RMSNorm over all H·D channels → ⊙ sigmoid(output_gate(x)) → out_proj. The recurrent state (B, H, D, D) float32 is
taken and returned for caching; padding positions (attention_mask == 0) neither enter nor decay it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.validation import check_choice, check_float, check_int, check_positive_int, check_tensor
from lumos.layers.decode import decode_linear
from lumos.layers.norm import RMSNorm
from lumos.ops import lightning_attention, lightning_attention_step
from lumos.ops.lightning.recurrent import recurrent_step

__all__ = ["LightningAttention", "minimax_slope_rate", "alibi_slopes"]


def alibi_slopes(num_heads: int) -> list[float]:
    """ALiBi base slopes (MiniMax ``_build_slope_tensor``): 2^(−8(h+1)/H) for H a power of two, else the
    slopes of the nearest lower power of two p followed by every other slope of the 2p list."""

    def pow2(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(num_heads).is_integer():
        return pow2(num_heads)
    p = 2 ** math.floor(math.log2(num_heads))
    return pow2(p) + alibi_slopes(2 * p)[0::2][: num_heads - p]


def minimax_slope_rate(num_heads: int, layer_idx: int, num_layers: int, variant: str = "release") -> torch.Tensor:
    """Per-head decay rate s_h of layer ``layer_idx`` (0-based over ALL layers, softmax ones included): (H,) float32.

    - ``"release"`` (MiniMax remote code, vLLM): alibi_slopes(H)_h · (1 − l/(L−1) + 1e−5); for L = 1 the factor
      is 1 + 1e−5 (vLLM's convention).
    - ``"transformers"`` (``MiniMaxLightningAttention.get_slope_rate``): 2^(−8(h+1)/H) for every H (no ALiBi rule
      for non-powers of two) · (1 − l/(L−1+1e−5) + 1e−5).
    """
    check_choice(variant, "variant", ("release", "transformers"), owner="minimax_slope_rate")
    check_positive_int(num_heads, "num_heads", owner="minimax_slope_rate")
    check_positive_int(num_layers, "num_layers", owner="minimax_slope_rate")
    check_int(layer_idx, "layer_idx", 0, num_layers - 1, owner="minimax_slope_rate")
    if variant == "release":
        base = torch.tensor(alibi_slopes(num_heads), dtype=torch.float64)
        factor = 1 + 1e-5 if num_layers == 1 else 1 - layer_idx / (num_layers - 1) + 1e-5
        return (base * factor).float()
    base = 1 / (2 ** (8 / num_heads))
    rate = base ** (torch.arange(num_heads) + 1)  # float32, as transformers computes it
    return rate * (1 - layer_idx / (num_layers - 1 + 1e-5) + 1e-5)


class LightningAttention(nn.Module):
    """MiniMax lightning-attention block (no positional encoding).

    Args:
        hidden_size: model width.
        num_heads: H. head_dim: D (q, k and v all use D).
        slope_rate: (H,) decay rates s_h of this layer (see :func:`minimax_slope_rate`), stored as a
            non-persistent float32 buffer (not in the state dict, as in the release checkpoints).
        rms_norm_eps: eps of the RMSNorm over H·D.
        bias: bias on the four projections (MiniMax: False).

    Submodules (release names): ``qkv_proj`` (3·H·D rows, per-head interleaved [q_h, k_h, v_h]),
    ``output_gate`` (H·D), ``norm`` (RMSNorm(H·D)), ``out_proj`` (hidden_size).

    Example:
        >>> layer = LightningAttention(32, 4, 8, minimax_slope_rate(4, 0, 2))
        >>> out, state = layer(torch.randn(2, 10, 32))
        >>> out.shape, state.shape
        (torch.Size([2, 10, 32]), torch.Size([2, 4, 8, 8]))
    """

    slope_rate: torch.Tensor  # (H,) buffer

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int, slope_rate: torch.Tensor,
                 rms_norm_eps: float = 1e-6, bias: bool = False) -> None:
        super().__init__()
        owner = "LightningAttention"
        for name, val in (("hidden_size", hidden_size), ("num_heads", num_heads), ("head_dim", head_dim)):
            check_positive_int(val, name, owner=owner)
        check_float(rms_norm_eps, "rms_norm_eps", 0.0, owner=owner, low_inclusive=False)
        check_tensor(slope_rate, "slope_rate", shape=(num_heads,), owner=owner)
        self.hidden_size, self.num_heads, self.head_dim = hidden_size, num_heads, head_dim
        inner = num_heads * head_dim
        self.qkv_proj = nn.Linear(hidden_size, 3 * inner, bias=bias)
        self.output_gate = nn.Linear(hidden_size, inner, bias=bias)
        self.norm = RMSNorm(inner, eps=rms_norm_eps)
        self.out_proj = nn.Linear(inner, hidden_size, bias=bias)
        self.register_buffer("slope_rate", slope_rate.detach().float().clone(), persistent=False)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, L, _ = x.shape
        qkv = F.silu(self.qkv_proj(x)).view(B, L, self.num_heads, 3 * self.head_dim)
        q, k, v = torch.split(qkv, self.head_dim, dim=-1)  # per-head interleaved rows
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, L, D)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attention_mask: torch.Tensor | None,
                state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        B, H, L, D = q.shape
        if attention_mask is not None and bool(attention_mask.all()):
            attention_mask = None
        if L == 1 and state is not None and attention_mask is None:
            return lightning_attention_step(q, k, v, self.slope_rate, state)
        if attention_mask is None:
            o, new_state = lightning_attention(q, k, v, self.slope_rate, state, output_final_state=True)
            assert new_state is not None  # output_final_state=True
            return o, new_state
        # Pack the real tokens of each row (varlen): padding neither enters nor decays the state.
        keep = attention_mask.bool()  # (B, L)
        lengths = keep.sum(1)
        cu = torch.zeros(B + 1, dtype=torch.long, device=q.device)
        cu[1:] = torch.cumsum(lengths, 0)
        rows, cols = keep.nonzero(as_tuple=True)  # row-major: rows in order, positions ascending

        def pack(t):
            return t[rows, :, cols].transpose(0, 1).unsqueeze(0)  # (1, H, T, D)

        if int(cu[-1]) == 0:  # nothing real: output zeros, state unchanged
            st = torch.zeros(B, H, D, D, device=q.device) if state is None else state.float()
            return v.new_zeros(B, H, L, D), st
        o_packed, new_state = lightning_attention(pack(q), pack(k), pack(v), self.slope_rate, state,
                                                  output_final_state=True, cu_seqlens=cu)
        assert new_state is not None  # output_final_state=True
        o = v.new_zeros(B, L, H, D)
        o[rows, cols] = o_packed[0].transpose(0, 1).to(o.dtype)
        return o.transpose(1, 2), new_state

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None,
                state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, hidden); attention_mask (B, L) 1 = real / 0 = pad, or None; state (B, H, D, D) or None.

        Returns (out (B, L, hidden), new_state (B, H, D, D) float32 — the state after the last real token).
        """
        owner = "LightningAttention"
        check_tensor(x, "x", ndim=3, shape=(None, None, self.hidden_size), owner=owner)
        B, L, _ = x.shape
        if attention_mask is not None:
            check_tensor(attention_mask, "attention_mask", shape=(B, L), owner=owner)
        q, k, v = self._qkv(x)
        o, new_state = self._attend(q, k, v, attention_mask, state)
        o = o.transpose(1, 2).reshape(B, L, self.num_heads * self.head_dim)
        o = self.norm(o)
        o = torch.sigmoid(self.output_gate(x)) * o
        return self.out_proj(o), new_state

    def decode_step(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One new token per sequence (inference; what the model's eager and compiled decoding both run):
        x (B, hidden), ``state`` (B, H, D, D) float32 (float64 for float64 models) updated in place by
        S ← λ·S + kᵀv; returns (B, hidden) from o = q·S, as :meth:`forward` on one token."""
        b, h, d = x.shape[0], self.num_heads, self.head_dim
        qkv = F.silu(decode_linear(x, self.qkv_proj.weight, self.qkv_proj.bias)).view(b, h, 1, 3 * d)
        q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]  # per-head interleaved rows
        o, new = recurrent_step(q, k, v, self.slope_rate, state)
        state.copy_(new)
        o = self.norm(o.reshape(b, h * d))
        o = torch.sigmoid(decode_linear(x, self.output_gate.weight, self.output_gate.bias)) * o
        return decode_linear(o, self.out_proj.weight, self.out_proj.bias)

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, num_heads={self.num_heads}, head_dim={self.head_dim}"

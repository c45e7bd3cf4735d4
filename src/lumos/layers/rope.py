"""Rotary position embedding (RoPE), NeoX rotate-half style, on the first ``rotary_dim`` dims of each head.

MiniMax's softmax layers rotate only the first ``rotary_dim`` of ``head_dim`` dims (64 of 128 in the release);
the rest pass through unchanged (reference §2.4). Within the rotated part, dim i is paired with dim
i + rotary_dim/2 and rotated by the angle p·θ^(−2i/rotary_dim) at position p:

    x'_i          = x_i·cos − x_{i+r/2}·sin
    x'_{i + r/2}  = x_{i+r/2}·cos + x_i·sin        (i < r/2)

:func:`apply_rotary` is the fast path; :func:`apply_rotary_reference` is its explicit pairwise twin.
"""

from __future__ import annotations

import torch
from torch import nn

from lumos.core.errors import bad_param
from lumos.core.validation import check_float, check_int

__all__ = ["RotaryEmbedding", "apply_rotary", "apply_rotary_reference", "rotary_inv_freq"]


def rotary_inv_freq(rotary_dim: int, base: float) -> torch.Tensor:
    """Inverse frequencies θ^(−2i/rotary_dim), i < rotary_dim/2, computed in float64 and returned as float32."""
    i = torch.arange(0, rotary_dim, 2, dtype=torch.float64)
    return (1.0 / (float(base) ** (i / rotary_dim))).float()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``r = 2·cos.shape[-1]`` dims of ``x``.

    Args:
        x: (B, H, L, D) queries or keys.
        cos, sin: (B, L, r/2) or (L, r/2) float32 tables from :class:`RotaryEmbedding`.

    Returns:
        (B, H, L, D) in ``x``'s dtype; dims ≥ r untouched.
    """
    half = cos.shape[-1]
    if cos.dim() == 3:  # (B, L, r/2) -> (B, 1, L, r/2)
        cos, sin = cos[:, None], sin[:, None]
    xr = x[..., : 2 * half].float()
    x1, x2 = xr[..., :half], xr[..., half:]
    rot = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)
    if 2 * half == x.shape[-1]:
        return rot
    return torch.cat((rot, x[..., 2 * half:]), dim=-1)


def apply_rotary_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Slow twin of :func:`apply_rotary`: an explicit loop over the rotated pairs (i, i + r/2)."""
    half = cos.shape[-1]
    if cos.dim() == 3:
        cos, sin = cos[:, None], sin[:, None]
    out = x.clone().float()
    xf = x.float()
    for i in range(half):
        a, b = xf[..., i], xf[..., i + half]
        c, s = cos[..., i], sin[..., i]
        out[..., i] = a * c - b * s
        out[..., i + half] = b * c + a * s
    return out.to(x.dtype)


class RotaryEmbedding(nn.Module):
    """cos/sin tables for partial NeoX RoPE.

    Args:
        rotary_dim: number of rotated dims per head (even).
        base: θ, the RoPE base ("rope_theta").

    ``forward(position_ids (B, L) or (L,) int) -> (cos, sin)`` each (B, L, rotary_dim/2) float32.
    """

    def __init__(self, rotary_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        check_int(rotary_dim, "rotary_dim", 2, owner="RotaryEmbedding")
        if rotary_dim % 2:
            raise bad_param("rotary_dim", "an even int ≥ 2", rotary_dim, owner="RotaryEmbedding")
        check_float(base, "base", 1.0, owner="RotaryEmbedding", low_inclusive=False)
        self.rotary_dim = rotary_dim
        self.base = float(base)
        self.register_buffer("inv_freq", rotary_inv_freq(rotary_dim, base), persistent=False)

    def reset_buffers(self) -> None:
        """Recompute ``inv_freq`` (after building on the meta device and ``to_empty``)."""
        self.inv_freq = rotary_inv_freq(self.rotary_dim, self.base).to(self.inv_freq.device)

    def _apply(self, fn, recurse=True):
        # keep the frequencies float32 when the module is cast (model.to(torch.bfloat16) would round them)
        super()._apply(fn, recurse)
        self.reset_buffers()
        return self

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        angles = position_ids.to(torch.float32)[..., None] * self.inv_freq.float()  # (B, L, r/2)
        return angles.cos(), angles.sin()

    def extra_repr(self) -> str:
        return f"rotary_dim={self.rotary_dim}, base={self.base:g}"

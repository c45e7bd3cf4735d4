"""RMSNorm as used by MiniMax (``MiniMaxRMSNorm`` / remote ``MiniMaxText01RMSNorm``).

y = weight ⊙ x / sqrt(mean(x², -1) + eps), computed in float32 and cast back to the input dtype (weight applied
after the cast, as transformers' Llama-family norms do).
"""

from __future__ import annotations

import torch
from torch import nn

from lumos.core.errors import bad_param
from lumos.core.validation import check_float, check_positive_int

__all__ = ["RMSNorm"]


class RMSNorm(nn.Module):
    """Root-mean-square layer norm over the last dimension.

    Args:
        dim: size of the normalised (last) dimension.
        eps: added to the mean square before the square root.

    Shapes: input (..., dim) → output (..., dim), same dtype as the input.

    Example:
        >>> norm = RMSNorm(8)
        >>> norm(torch.randn(2, 3, 8)).shape
        torch.Size([2, 3, 8])
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        check_positive_int(dim, "dim", owner="RMSNorm")
        check_float(eps, "eps", 0.0, owner="RMSNorm", low_inclusive=False)
        self.dim = dim
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.dim:
            raise bad_param("x", f"a tensor whose last dimension is {self.dim}", f"shape {tuple(x.shape)}",
                            owner="RMSNorm")
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"

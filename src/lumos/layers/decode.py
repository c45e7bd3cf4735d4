"""Matrix-vector products of the layers' one-token decode steps (``decode_step`` of each layer).

A decode step at small batch reads every active weight once and does little arithmetic with it. Eagerly the
products are plain ``F.linear`` / ``matmul`` calls. Under ``torch.compile`` they are written as a broadcast
multiply and a sum with float32 accumulation, which inductor fuses into one pass over the weight (and, for
:func:`gathered_linear`, reads the chosen experts' weights by index inside that pass, without copying them).
Both forms compute the same product; ``tests/layers/test_decode.py`` checks them against each other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["decode_linear", "gathered_linear"]


def decode_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x (B, in) · weightᵀ (+ bias) -> (B, out) in x's dtype."""
    if not torch.compiler.is_compiling():
        return F.linear(x, weight, bias)
    y = (weight.float() * x.float()[:, None, :]).sum(-1).to(x.dtype)
    return y if bias is None else y + bias


def gathered_linear(x: torch.Tensor, weight: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Row b times the k matrices ``weight[index[b]]``: x (B, in) or (B, k, in), weight (E, out, in), index (B, k)
    long -> (B, k, out) in x's dtype."""
    xk = x[:, None, :] if x.dim() == 2 else x  # (B, 1 or k, in)
    if not torch.compiler.is_compiling():
        if weight.device.type == "cpu":
            # one F.linear per chosen expert on a view of its weights: ``weight[index]`` would copy B·k·out·in
            # values per call (on CPU that copy was 2.4x the whole eager decode step of the benchmark model)
            out = x.new_empty(index.shape[0], index.shape[1], weight.shape[1])
            for b, row in enumerate(index.tolist()):
                for j, e in enumerate(row):
                    out[b, j] = F.linear(xk[b, j if xk.shape[1] > 1 else 0], weight[e])
            return out
        return torch.matmul(weight[index], xk[..., None]).squeeze(-1)
    return (weight[index].float() * xk.float()[:, :, None, :]).sum(-1).to(x.dtype)

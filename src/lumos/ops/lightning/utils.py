"""Small helpers shared by the lightning-attention implementations."""

from __future__ import annotations

import torch

__all__ = ["compute_dtype", "split_packed"]


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """Accumulation / state dtype: float64 for float64 inputs, otherwise float32 (also for bf16/fp16)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def split_packed(cu_seqlens: torch.Tensor) -> list[tuple[int, int]]:
    """(start, end) token ranges of packed sequences from cumulative offsets ``cu_seqlens`` (N + 1,)."""
    offs = [int(x) for x in cu_seqlens.tolist()]
    return list(zip(offs[:-1], offs[1:]))

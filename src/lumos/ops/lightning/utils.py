"""Small helpers shared by the lightning-attention implementations."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["compute_dtype", "split_packed", "per_sequence"]

#: fn(q, k, v, initial_state) -> (o, final_state) on one dense batch or one packed sequence.
SequenceFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None"],
                      "tuple[torch.Tensor, torch.Tensor]"]


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """Accumulation / state dtype: float64 for float64 inputs, otherwise float32 (also for bf16/fp16)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def split_packed(cu_seqlens: torch.Tensor | Sequence[int]) -> list[tuple[int, int]]:
    """(start, end) token ranges of packed sequences from cumulative offsets ``cu_seqlens`` (N + 1,).

    Example:
        >>> split_packed(torch.tensor([0, 3, 3, 7]))
        [(0, 3), (3, 3), (3, 7)]
    """
    offs = cu_seqlens.tolist() if isinstance(cu_seqlens, torch.Tensor) else cu_seqlens
    offs = [int(x) for x in offs]
    return list(zip(offs[:-1], offs[1:]))


def per_sequence(fn: SequenceFn, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                 initial_state: torch.Tensor | None, cu_seqlens: torch.Tensor | Sequence[int] | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``fn`` on every packed sequence, each from its own initial state — the packed-sequence loop of the
    reference implementations (no state flows between sequences).

    Args:
        fn: ``fn(q, k, v, s0) -> (o, final)`` on head-first tensors q, k (B, H, T, Dk), v (B, H, T, Dv) and
            s0 (B, H, Dk, Dv) or None.
        q, k: (B, H, L, Dk); v: (B, H, L, Dv); B == 1 when packed.
        initial_state: (N, H, Dk, Dv) or None; N = B, or the number of packed sequences.
        cu_seqlens: (N + 1,) offsets along L, or None for one call on the whole batch.

    Returns:
        (o (B, H, L, Dv): the outputs of the sequences in order along L, final (N, H, Dk, Dv)).

    Example:
        >>> cumsum = lambda q, k, v, s0: (v.cumsum(2), v.sum(2, keepdim=True))
        >>> x = torch.arange(5.0).view(1, 1, 5, 1)
        >>> per_sequence(cumsum, x, x, x, None, [0, 2, 5])[0].flatten().tolist()
        [0.0, 1.0, 2.0, 5.0, 9.0]
    """
    if cu_seqlens is None:
        return fn(q, k, v, initial_state)
    outs, finals = [], []
    for n, (a, b) in enumerate(split_packed(cu_seqlens)):
        s0 = None if initial_state is None else initial_state[n : n + 1]
        o_n, f_n = fn(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b], s0)
        outs.append(o_n)
        finals.append(f_n)
    return torch.cat(outs, dim=2), torch.cat(finals, dim=0)

"""The baseline the benchmark and demo compare against: transformers' MiniMax prefill loop, op only.

A line-for-line copy of the block loop in transformers 5.x ``MiniMaxLightningAttention.forward`` (no cache, no
projections): its decay buffers (``query_decay``, ``key_decay``, ``diagonal_decay``, built as in
``decay_factors``) and its per-block Python loop with 256-token blocks, in plain autograd. Same inputs and
outputs as :func:`lumos.ops.lightning_attention` without initial state. tests/ops/lightning/test_transformers_loop.py
checks it against the transformers module itself.
"""

from __future__ import annotations

import torch

__all__ = ["transformers_blocked_loop"]


def _decay_factors(slope_rate: torch.Tensor, block_size: int):
    # transformers MiniMaxLightningAttention.decay_factors, slope_rate of shape (H, 1, 1)
    block_size_range = torch.arange(block_size, device=slope_rate.device) + 1
    query_decay = torch.exp(-slope_rate * block_size_range[:, None])
    key_decay = torch.exp(-slope_rate * (block_size - block_size_range[:, None]))
    diagonal_decay = block_size_range[:, None] - block_size_range[None, :]
    diagonal_decay = diagonal_decay[None, None, :, :]
    diagonal_decay = slope_rate * diagonal_decay
    diagonal_decay = torch.where(diagonal_decay >= 0, -diagonal_decay, float("-inf"))
    diagonal_decay = torch.exp(diagonal_decay)
    return query_decay, key_decay, diagonal_decay


def transformers_blocked_loop(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slope: torch.Tensor, block_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' MiniMax lightning prefill: q, k (B, H, L, D), v (B, H, L, D), slope (H,) → (o, final state)."""
    batch_size, num_heads, seq_len, head_dim = q.shape
    slope_rate = slope.to(q.dtype)[:, None, None]
    query_decay, key_decay, diagonal_decay = _decay_factors(slope_rate, block_size)
    num_blocks = (seq_len + block_size - 1) // block_size
    attn_weights_inter = torch.zeros(batch_size, num_heads, head_dim, v.shape[-1], device=v.device, dtype=v.dtype)
    attn_output = []
    for i in range(num_blocks):
        start_idx = i * block_size
        end_idx = min(start_idx + block_size, seq_len)
        current_block_size = end_idx - start_idx
        current_query_states = q[:, :, start_idx:end_idx]
        current_key_states = k[:, :, start_idx:end_idx]
        current_value_states = v[:, :, start_idx:end_idx]
        current_query_decay = query_decay[:, :current_block_size]
        current_key_decay = key_decay[:, -current_block_size:]
        current_diagonal_decay = diagonal_decay[:, :, :current_block_size, :current_block_size]
        block_decay = torch.exp(-slope_rate * current_block_size)
        attn_weights_intra = torch.matmul(current_query_states, current_key_states.transpose(-1, -2))
        attn_output_intra = torch.matmul(attn_weights_intra * current_diagonal_decay, current_value_states)
        attn_output_inter = torch.matmul(current_query_states * current_query_decay, attn_weights_inter)
        attn_output.append(attn_output_inter + attn_output_intra)
        next_attn_weights_inter = torch.matmul(
            (current_key_states * current_key_decay).transpose(-1, -2), current_value_states
        )
        attn_weights_inter = attn_weights_inter * block_decay + next_attn_weights_inter
    return torch.cat(attn_output, dim=-2), attn_weights_inter

"""Functional operators (no parameters). Layers in :mod:`lumos.layers` build on these.

- :func:`lightning_attention` / :func:`lightning_attention_step`: head-first ``(B, H, L, D)`` lightning attention
  (MiniMax semantics) and its decode step.
- :func:`lightning_attn`: the same op with flash-linear-attention's ``(B, T, H, D)`` layout and arguments
  (``g_gamma``, ``scale``, ``initial_state``, ``output_final_state``, ``cu_seqlens``).
"""

from lumos.ops.lightning import lightning_attention, lightning_attention_step, lightning_attn

__all__ = ["lightning_attention", "lightning_attention_step", "lightning_attn"]

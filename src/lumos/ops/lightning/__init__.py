"""Lightning attention (MiniMax linear attention with per-head exponential decay).

Public API (validated): :func:`lightning_attention` and :func:`lightning_attention_step` (head-first
``(B, H, L, D)``), and :func:`lightning_attn` (flash-linear-attention's ``(B, T, H, D)`` layout and arguments).
The implementations (`naive`, `recurrent`, `chunked`, `triton`) share one signature and trust their inputs;
:mod:`~lumos.ops.lightning.opaque` wraps them as one op for ``torch.compile``.
"""

from lumos.ops.lightning.api import BACKENDS, lightning_attention, lightning_attention_step, lightning_attn
from lumos.ops.lightning.chunk import DEFAULT_BLOCK_SIZE, chunked_lightning_attention
from lumos.ops.lightning.naive import naive_lightning_attention
from lumos.ops.lightning.recurrent import recurrent_lightning_attention, recurrent_step

__all__ = [
    "BACKENDS",
    "DEFAULT_BLOCK_SIZE",
    "chunked_lightning_attention",
    "lightning_attention",
    "lightning_attention_step",
    "lightning_attn",
    "naive_lightning_attention",
    "recurrent_lightning_attention",
    "recurrent_step",
]

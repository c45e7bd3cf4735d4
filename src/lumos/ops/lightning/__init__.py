"""Lightning attention (MiniMax linear attention with per-head exponential decay).

Public API: :func:`lightning_attention` and :func:`lightning_attention_step` (validated); the implementations
(`naive`, `recurrent`, `chunked`, `triton`) share one signature and trust their inputs.
"""

from lumos.ops.lightning.api import BACKENDS, lightning_attention, lightning_attention_step
from lumos.ops.lightning.chunk import DEFAULT_BLOCK_SIZE, chunked_lightning_attention
from lumos.ops.lightning.naive import naive_lightning_attention
from lumos.ops.lightning.recurrent import recurrent_lightning_attention, recurrent_step

__all__ = [
    "BACKENDS",
    "DEFAULT_BLOCK_SIZE",
    "chunked_lightning_attention",
    "lightning_attention",
    "lightning_attention_step",
    "naive_lightning_attention",
    "recurrent_lightning_attention",
    "recurrent_step",
]

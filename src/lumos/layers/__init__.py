"""Neural-network layers (build on :mod:`lumos.ops`).

One re-export per line, in the ``from x import Name as Name`` form (explicit re-export, ruff-clean).
"""

from lumos.layers.lightning_attention import LightningAttention as LightningAttention
from lumos.layers.moe import SparseMoE as SparseMoE
from lumos.layers.norm import RMSNorm as RMSNorm
from lumos.layers.rope import RotaryEmbedding as RotaryEmbedding
from lumos.layers.softmax_attention import SoftmaxAttention as SoftmaxAttention

__all__ = ["LightningAttention", "SparseMoE", "RMSNorm", "RotaryEmbedding", "SoftmaxAttention"]

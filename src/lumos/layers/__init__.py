"""Neural-network layers (build on :mod:`lumos.ops`).

One re-export per line, in the ``from x import Name as Name`` form (explicit re-export, ruff-clean).
"""

from lumos.layers.lightning_attention import LightningAttention as LightningAttention
from lumos.layers.norm import RMSNorm as RMSNorm

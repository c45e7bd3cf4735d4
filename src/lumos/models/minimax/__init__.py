"""The MiniMax-M1 hybrid model: its config (both ``config.json`` formats), the modeling code and the weight layouts.

``MiniMaxConfig`` reads and writes the release (``minimax_m1``) and transformers (``minimax``) config names;
``HybridLM`` is the lightning/softmax hybrid MoE decoder; :mod:`~lumos.models.minimax.convert` maps its
parameters to and from both checkpoint key layouts.
"""

from lumos.models.minimax.config import CONFIG_FORMATS, MiniMaxConfig
from lumos.models.minimax.modeling import DecoderLayer, HybridCache, HybridLM, tiny_hybrid

__all__ = ["CONFIG_FORMATS", "DecoderLayer", "HybridCache", "HybridLM", "MiniMaxConfig", "tiny_hybrid"]

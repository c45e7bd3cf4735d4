"""The MiniMax-M1 hybrid MoE language model: config (both formats), model, checkpoints, generation, tokenizers.

``from lumos.models import HybridLM, MiniMaxConfig, ByteTokenizer, generate, load_pretrained, save_pretrained``.
"""

from lumos.models.checkpoint.pretrained import load_pretrained, save_pretrained
from lumos.models.generation import GenerationOutput, generate
from lumos.models.minimax.config import MiniMaxConfig
from lumos.models.minimax.modeling import HybridCache, HybridLM, tiny_hybrid
from lumos.models.tokenizer import ByteTokenizer, HFTokenizer, load_tokenizer

__all__ = ["ByteTokenizer", "GenerationOutput", "HFTokenizer", "HybridCache", "HybridLM", "MiniMaxConfig", "generate",
           "load_pretrained", "load_tokenizer", "save_pretrained", "tiny_hybrid"]

"""Tiny model factories shared by the model tests (local weights only, nothing downloaded)."""

from __future__ import annotations

import torch

from lumos.models import HybridLM, MiniMaxConfig

LT = {0: "linear_attention", 1: "full_attention"}


def randomize(module: torch.nn.Module, seed: int = 0, std: float = 0.3) -> None:
    """Large random weights (so every path matters in the logits); norm weights around 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() == 1:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def tiny_transformers(layer_types: list[int], *, heads: int = 4, kv_heads: int = 2, head_dim: int = 8,
                      partial: float = 1.0, block_size: int = 4, tie: bool = False, experts: int = 4, top_k: int = 2,
                      seed: int = 0):
    """A random transformers ``MiniMaxForCausalLM`` (fp32, eval)."""
    from transformers import MiniMaxConfig as TfConfig
    from transformers import MiniMaxForCausalLM

    rope = ({"rope_type": "default", "rope_theta": 1000.0} if partial == 1.0 else
            {"rope_type": "proportional", "rope_theta": 1000.0, "partial_rotary_factor": partial})
    cfg = TfConfig(vocab_size=61, hidden_size=32, intermediate_size=24, num_hidden_layers=len(layer_types),
                   num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
                   num_local_experts=experts, num_experts_per_tok=top_k, layer_types=[LT[t] for t in layer_types],
                   block_size=block_size, rope_parameters=rope, tie_word_embeddings=tie,
                   full_attn_alpha_factor=1.3, full_attn_beta_factor=0.8, linear_attn_alpha_factor=1.1,
                   linear_attn_beta_factor=0.7, mlp_alpha_factor=1.7, mlp_beta_factor=0.9, pad_token_id=0,
                   bos_token_id=1, eos_token_id=2)
    torch.manual_seed(seed)
    model = MiniMaxForCausalLM(cfg).eval()
    randomize(model, seed, std=0.15)
    return model


def tiny_lumos(layer_types: list[int] | None = None, seed: int = 0, **overrides) -> HybridLM:
    """A random lumos model (fp32, eval) with the byte-tokenizer vocabulary."""
    layer_types = [0, 1, 0, 1] if layer_types is None else layer_types
    kw = dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=8, intermediate_size=24,
              num_local_experts=4, num_experts_per_tok=2, num_hidden_layers=len(layer_types),
              attn_type_list=list(layer_types), rotary_dim=4, rope_theta=1000.0, block_size=4)
    kw.update(overrides)
    model = HybridLM(MiniMaxConfig(**kw)).eval()
    randomize(model, seed, std=0.2)
    return model

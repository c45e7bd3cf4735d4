import torch

from lumos.layers.rope import RotaryEmbedding, apply_rotary
from lumos.models import MiniMaxConfig
from lumos.models.minimax.convert import rope_permutation, source_spec, transformers_decay_buffers
from lumos.testing import assert_close


def _proportional_rope(x, pos, theta, head_dim, rotary_dim):
    """transformers' 'proportional' RoPE: rotate pairs (i, i + d/2), frequencies theta^(-2i/d) for i < r/2."""
    a = rotary_dim // 2
    inv = torch.cat((1.0 / theta ** (torch.arange(0, 2 * a, 2).double() / head_dim), torch.zeros(head_dim // 2 - a,
                                                                                                   dtype=torch.float64)))
    ang = pos.double()[:, None] * inv
    cos, sin = torch.cat((ang.cos(), ang.cos()), -1), torch.cat((ang.sin(), ang.sin()), -1)
    rot = torch.cat((-x[..., head_dim // 2:], x[..., : head_dim // 2]), -1)
    return x * cos + rot * sin


def test_rope_permutation_maps_proportional_to_partial_rope():
    d, r, theta = 16, 4, 1000.0
    perm = rope_permutation(d, r)
    assert sorted(perm.tolist()) == list(range(d))
    assert torch.equal(rope_permutation(d, d), torch.arange(d))
    x = torch.randn(5, d, dtype=torch.float64)
    pos = torch.arange(5)
    tf_out = _proportional_rope(x, pos, theta ** (d / r), d, r)
    cos, sin = RotaryEmbedding(r, theta)(pos)
    ours = apply_rotary(x[:, perm].float()[None, None], cos, sin)[0, 0]
    assert_close("permuted proportional == partial", ours, tf_out[:, perm].float(), atol=1e-5, rtol=1e-5)


def test_source_spec_covers_every_parameter_once():
    from lumos.models import HybridLM

    for tie in (False, True):
        cfg = MiniMaxConfig(num_hidden_layers=3, attn_type_list=[0, 1, 0], tie_word_embeddings=tie)
        model = HybridLM(cfg)
        for fmt, style in (("minimax_m1", "experts"), ("transformers", "fused"), ("transformers", "experts")):
            spec = source_spec(cfg, fmt, style)
            targets = {p.param for s in spec.values() for p in s.placements}
            assert targets == set(dict(model.named_parameters())), (fmt, style, tie)


def test_decay_buffers_match_transformers():
    from transformers import MiniMaxConfig as TfConfig
    from transformers.models.minimax.modeling_minimax import MiniMaxLightningAttention

    cfg = TfConfig(hidden_size=32, num_attention_heads=4, head_dim=8, num_hidden_layers=3, block_size=5,
                   layer_types=["linear_attention"] * 3)
    ref = MiniMaxLightningAttention(cfg, 1)
    ours = transformers_decay_buffers(ref.slope_rate.flatten(), 5)
    for name, t in ours.items():
        assert_close(name, t, getattr(ref, name), atol=1e-7, rtol=1e-6)

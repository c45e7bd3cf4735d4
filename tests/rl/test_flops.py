"""FLOPs calculator: parameter counts against real modules, cumulative == Σ per-token, the paper's claim."""

from __future__ import annotations

import pytest

from lumos.rl.flops import deepseek_r1, from_minimax_config, minimax_m1
from lumos.rl.flops_report import claim_check


def test_attention_term_hand_computed():
    # M1: 10 softmax layers × 2 · 64 heads · (128 + 128) = 327,680 FLOPs per cached token
    assert minimax_m1().per_ctx == 10 * 2 * 64 * 256
    # R1 naive MLA: 61 layers × 2 · 128 heads · (192 + 128); absorbed: (512 + 64 + 512)
    assert deepseek_r1().per_ctx == 61 * 2 * 128 * 320
    assert deepseek_r1("absorbed").per_ctx == 61 * 2 * 128 * 1088
    # lightning recurrence: 70 layers × 5 · 64 · 128²
    assert minimax_m1().parts["lightning recurrence"] == 70 * 5 * 64 * 128 * 128


def test_active_parameters_close_to_model_cards():
    assert abs(deepseek_r1().active_params / 37e9 - 1) < 0.02
    assert abs(minimax_m1().active_params / 45.9e9 - 1) < 0.04


def test_cumulative_is_sum_of_per_token():
    m = minimax_m1()
    for n, p in ((1, 0), (7, 3), (50, 11)):
        assert m.cumulative(n, p) == pytest.approx(sum(m.per_token(p + t) for t in range(1, n + 1)), rel=1e-12)


def test_parameter_count_matches_a_real_hybrid_model():
    """With every expert active, the counted weights equal the HybridLM's matmul parameters."""
    from lumos.models import HybridLM, MiniMaxConfig

    cfg = MiniMaxConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, head_dim=16, num_key_value_heads=1,
                        intermediate_size=24, num_local_experts=2, num_experts_per_tok=2, attn_type_list=[0, 1, 0],
                        rotary_dim=8)
    model = HybridLM(cfg)
    matmul = sum(p.numel() for n, p in model.named_parameters() if "norm" not in n and "embed_tokens" not in n)
    assert from_minimax_config(cfg).active_params == matmul


def test_paper_claim():
    c = claim_check()
    assert c["cumulative_64K"] < 0.5 and c["per_token_64K"] < 0.5
    assert 0.2 < c["per_token_100K"] < 0.3
    with pytest.raises(ValueError, match="'mla'"):
        deepseek_r1("flash")

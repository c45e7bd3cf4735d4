"""Parameter counts by part: against a built HybridLM, and MiniMax-M1's published sizes."""

from __future__ import annotations

import pytest

from lumos.analysis.sizes import all_softmax, count_params, preset_config, resolve_config
from lumos.core.errors import LumosError
from lumos.models import HybridLM, MiniMaxConfig

SMALL = dict(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, head_dim=4, num_key_value_heads=1,
             intermediate_size=6, num_local_experts=4, num_experts_per_tok=2, attn_type_list=[0, 1], rotary_dim=2,
             vocab_size=10, bos_token_id=None, eos_token_id=None, pad_token_id=None, block_size=4)


def test_small_config_by_hand():
    c = count_params(MiniMaxConfig(**SMALL))
    assert c.lightning_attn == 5 * 8 * 8 + 8            # qkv 24×8, gate 8×8, out 8×8, norm 8
    assert c.softmax_attn == 8 * (8 + 2 * 4) + 8 * 8     # q 8×8, k/v 4×8, o 8×8
    assert c.expert == 3 * 8 * 6 and c.router == 8 * 4
    assert c.layers == (328 + 4 * 144 + 32 + 16, 192 + 4 * 144 + 32 + 16)
    assert c.total == 952 + 816 + 80 + 80 + 8
    assert c.active == c.total - 160 - 2 * 2 * 144       # 2 of 4 experts idle in each layer; no embed/head
    assert c.norms_and_routers == 8 + 2 * (16 + 32) + 8


@pytest.mark.parametrize("tied", [False, True])
def test_counts_equal_a_built_model(tied):
    cfg = MiniMaxConfig(**{**SMALL, "num_hidden_layers": 3, "attn_type_list": [0, 1, 0], "tie_word_embeddings": tied})
    model = HybridLM(cfg)
    c = count_params(cfg)
    params = dict(model.named_parameters())
    assert c.total == sum(p.numel() for p in params.values())
    assert c.experts == sum(p.numel() for n, p in params.items() if ".w1" in n or ".w2" in n or ".w3" in n)
    assert list(c.layers) == [sum(p.numel() for n, p in params.items() if f"layers.{i}." in n) for i in range(3)]


def test_minimax_m1_sizes():
    c = count_params(preset_config("minimax-m1"))
    assert (c.n_lightning, c.n_softmax) == (70, 10)
    assert c.total == 456_089_655_296                    # model card: 456B
    assert c.active == 45_944_920_064                    # model card: 45.9B (without embedding and LM head)
    assert c.experts == 80 * 32 * 3 * 6144 * 9216        # reference §2.6: ≈ 434.9B
    assert round(70 * (c.lightning_attn - c.lightning_norm) / 1e9, 1) == 17.6
    assert round(10 * c.softmax_attn / 1e9, 2) == 1.13
    # release index total_size in bytes: bf16 everywhere but the 80 router gates in fp32 (derived)
    assert 2 * c.total + 2 * 80 * c.router == 912_210_767_872


def test_all_softmax_twin_and_resolve(tmp_path):
    m1 = preset_config("minimax-m1")
    twin = all_softmax(m1)
    assert twin.attn_type_list == [1] * 80 and m1.attn_type_list.count(1) == 10
    assert resolve_config("minimax-m1")[0] == "minimax-m1"
    cfg = MiniMaxConfig(**SMALL)
    cfg.to_json(tmp_path / "ck" / "config.json")
    name, back = resolve_config(str(tmp_path / "ck"))
    assert name == "ck" and count_params(back) == count_params(cfg)
    with pytest.raises(LumosError, match="neither a known model name"):
        resolve_config("minimax-m2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LumosError, match="without a config.json"):
        resolve_config(str(tmp_path / "empty"))

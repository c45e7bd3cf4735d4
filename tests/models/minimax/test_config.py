import json

import pytest

from lumos.core.errors import LumosError
from lumos.models import MiniMaxConfig
from lumos.models.minimax.config import detect_format

RELEASE_M1 = {  # shared/reference/minimax-m1.md §2.1, shrunk where only sizes differ
    "architectures": ["MiniMaxM1ForCausalLM"], "model_type": "minimax_m1", "auto_map": {"AutoConfig": "x"},
    "attn_type_list": [0] * 7 + [1], "hidden_size": 64, "num_hidden_layers": 8, "num_attention_heads": 4,
    "head_dim": 16, "num_key_value_heads": 2, "intermediate_size": 32, "num_local_experts": 4,
    "num_experts_per_tok": 2, "shared_intermediate_size": 0, "shared_moe_mode": "sigmoid", "hidden_act": "silu",
    "rms_norm_eps": 1e-05, "rope_theta": 10000000, "rotary_dim": 8, "postnorm": True,
    "layernorm_full_attention_alpha": 3.5565588200778455, "layernorm_full_attention_beta": 1.0,
    "layernorm_linear_attention_alpha": 3.5565588200778455, "layernorm_linear_attention_beta": 1.0,
    "layernorm_mlp_alpha": 3.5565588200778455, "layernorm_mlp_beta": 1.0, "max_position_embeddings": 10240000,
    "vocab_size": 300, "tie_word_embeddings": False, "router_aux_loss_coef": 0.001, "router_jitter_noise": 0.0,
    "attention_dropout": 0.0, "torch_dtype": "bfloat16", "transformers_version": "4.45.2", "use_cache": True,
    "bos_token_id": None, "eos_token_id": 200020, "initializer_range": 0.006,
}


def test_defaults_are_small_hybrid_and_deepnorm():
    c = MiniMaxConfig()
    assert c.vocab_size == 259 and (c.pad_token_id, c.bos_token_id, c.eos_token_id) == (256, 257, 258)
    assert c.attn_type_list == [0, 0, 0, 1] and c.rotary_dim == c.head_dim // 2
    assert c.layernorm_mlp_alpha == pytest.approx((2 * 4) ** 0.25)
    assert MiniMaxConfig(num_hidden_layers=16).attn_type_list == ([0] * 7 + [1]) * 2
    assert MiniMaxConfig(num_hidden_layers=80).layernorm_full_attention_alpha == pytest.approx(3.5565588200778455)


def test_release_config_reads_and_round_trips(tmp_path):
    cfg = dict(RELEASE_M1, eos_token_id=2)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    c = MiniMaxConfig.from_json(tmp_path)
    assert c.layer_kinds == ["lightning"] * 7 + ["softmax"] and c.rotary_dim == 8 and c.rope_theta == 1e7
    assert c.lightning_slope_variant == "release" and c.torch_dtype == "bfloat16"
    for fmt in ("minimax_m1", "transformers"):
        c.to_json(tmp_path / f"{fmt}.json", format=fmt)
        back = MiniMaxConfig.from_json(tmp_path / f"{fmt}.json")
        assert back == c, fmt
    tf = json.loads((tmp_path / "transformers.json").read_text())
    assert tf["model_type"] == "minimax" and tf["layer_types"][-1] == "full_attention"
    assert tf["mlp_alpha_factor"] == pytest.approx(3.5565588200778455)
    assert tf["rope_parameters"] == {"rope_type": "proportional", "partial_rotary_factor": 0.5, "rope_theta": 1e14}


def test_reads_transformers_save_pretrained(tmp_path):
    from transformers import MiniMaxConfig as TfConfig

    tf = TfConfig(vocab_size=50, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, head_dim=8, num_key_value_heads=2,
                  layer_types=["linear_attention", "full_attention", "linear_attention"], block_size=16,
                  mlp_alpha_factor=2.0, rope_parameters={"rope_type": "default", "rope_theta": 500.0})
    tf.save_pretrained(tmp_path)
    c = MiniMaxConfig.from_json(tmp_path / "config.json")
    assert detect_format(json.loads((tmp_path / "config.json").read_text())) == "transformers"
    assert c.attn_type_list == [0, 1, 0] and c.layernorm_mlp_alpha == 2.0 and c.block_size == 16
    assert c.rotary_dim == 8 and c.rope_theta == 500.0 and c.lightning_slope_variant == "transformers"
    # lumos' transformers-format config is loadable by transformers with the same meaning
    c.to_json(tmp_path / "x" / "config.json", format="transformers")
    back = TfConfig.from_pretrained(tmp_path / "x")
    assert back.layer_types == tf.layer_types and back.mlp_alpha_factor == 2.0


def test_all_problems_reported_together():
    bad = dict(RELEASE_M1, attn_type_list=[0, 2], rotary_dim=9, foo=1, layer_types=["full_attention"])
    with pytest.raises(LumosError) as exc:
        MiniMaxConfig.from_dict(bad)
    msg = str(exc.value)
    for part in ("unknown field 'foo'", "'layer_types' is a transformers field", "attn_type_list"):
        assert part in msg, msg
    with pytest.raises(LumosError) as exc:
        MiniMaxConfig(num_attention_heads=4, num_key_value_heads=3, num_experts_per_tok=9, hidden_act="gelu")
    msg = str(exc.value)
    assert "3 problems" in msg or "4 problems" in msg
    for part in ("num_key_value_heads", "num_experts_per_tok", "hidden_act"):
        assert part in msg


@pytest.mark.parametrize("patch,needle", [
    ({"num_experts": 7}, "contradicts"),
    ({"rotary_dim": 4}, "is a release"),
    ({"rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}}, "ignored"),
    ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}}, "not supported"),
    ({"layer_types": ["linear_attention"]}, "attn_type_list"),
    ({"sliding_windowz": 3}, "unknown field"),
])
def test_transformers_contradictions_are_errors(patch, needle):
    base = {"model_type": "minimax", "vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_local_experts": 4, "layer_types": ["linear_attention", "full_attention"]}
    with pytest.raises(LumosError, match=needle):
        MiniMaxConfig.from_dict({**base, **patch})


def test_missing_layer_types_and_bad_files(tmp_path):
    with pytest.raises(LumosError, match="layer_types"):
        MiniMaxConfig.from_dict({"model_type": "minimax", "num_hidden_layers": 2})
    with pytest.raises(LumosError, match="model_type"):
        MiniMaxConfig.from_dict({"model_type": "llama"})
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(LumosError, match="not valid JSON"):
        MiniMaxConfig.from_json(tmp_path)
    with pytest.raises(LumosError, match="not found"):
        MiniMaxConfig.from_json(tmp_path / "nope")
    with pytest.raises(LumosError, match="format"):
        MiniMaxConfig().to_json(tmp_path / "c.json", format="gguf")
    pre = MiniMaxConfig(postnorm=False)
    assert MiniMaxConfig.from_dict(pre.to_format_dict("minimax_m1")) == pre
    with pytest.raises(LumosError, match="postnorm"):
        pre.to_json(tmp_path / "c.json", format="transformers")


def _release_code_config(tmp_path):
    """config.json as MiniMax's release code writes it: a PretrainedConfig whose __init__ carries the release
    defaults (configuration_minimax_m1.py: postnorm False, every layernorm_*_alpha/beta 1, no rotary_dim)."""
    from transformers import PretrainedConfig

    class MiniMaxM1Config(PretrainedConfig):
        model_type = "minimax_m1"

        def __init__(self, vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=16, intermediate_size=32, num_local_experts=4,
                     num_experts_per_tok=2, attn_type_list=(0, 1), postnorm=False,
                     layernorm_full_attention_alpha=1, layernorm_full_attention_beta=1,
                     layernorm_linear_attention_alpha=1, layernorm_linear_attention_beta=1, layernorm_mlp_alpha=1,
                     layernorm_mlp_beta=1, **kwargs):
            super().__init__(**kwargs)
            self.vocab_size, self.hidden_size, self.num_hidden_layers = vocab_size, hidden_size, num_hidden_layers
            self.num_attention_heads, self.num_key_value_heads, self.head_dim = (num_attention_heads,
                                                                                num_key_value_heads, head_dim)
            self.intermediate_size, self.num_local_experts = intermediate_size, num_local_experts
            self.num_experts_per_tok, self.attn_type_list, self.postnorm = num_experts_per_tok, list(attn_type_list), postnorm
            self.layernorm_full_attention_alpha = layernorm_full_attention_alpha
            self.layernorm_full_attention_beta = layernorm_full_attention_beta
            self.layernorm_linear_attention_alpha = layernorm_linear_attention_alpha
            self.layernorm_linear_attention_beta = layernorm_linear_attention_beta
            self.layernorm_mlp_alpha, self.layernorm_mlp_beta = layernorm_mlp_alpha, layernorm_mlp_beta

    MiniMaxM1Config().save_pretrained(tmp_path)
    return json.loads((tmp_path / "config.json").read_text())


def test_release_code_defaults_for_omitted_fields(tmp_path):
    written = _release_code_config(tmp_path)
    assert "rotary_dim" not in written and written["postnorm"] is False
    c = MiniMaxConfig.from_json(tmp_path)  # the release code's meaning, not lumos' dataclass defaults
    assert c.postnorm is False and c.rotary_dim == c.head_dim == 16
    assert c.layernorm_mlp_alpha == c.layernorm_full_attention_alpha == c.layernorm_linear_attention_alpha == 1
    # a hand-written release config that leaves the fields out gets the same defaults
    hand = {k: v for k, v in RELEASE_M1.items() if k not in ("rotary_dim", "postnorm", "eos_token_id") and "alpha" not in k}
    h = MiniMaxConfig.from_dict(hand)
    assert h.postnorm is False and h.rotary_dim == 16 and h.layernorm_mlp_alpha == 1.0
    # lumos' own dataclass keeps its defaults (written out in full, so a round trip is exact)
    assert MiniMaxConfig().postnorm is True
    assert MiniMaxConfig.from_dict(MiniMaxConfig().to_format_dict("minimax_m1")) == MiniMaxConfig()


def test_release_config_without_shapes_is_ambiguous():
    with pytest.raises(LumosError, match="omits.*hidden_size"):
        MiniMaxConfig.from_dict({"model_type": "minimax_m1", "vocab_size": 300})


def test_one_rule_says_which_model_types_lumos_builds(tmp_path):
    import json

    from lumos.models.minimax.config import is_minimax_model_type
    from lumos.models.transformers_lm import is_transformers_dir

    assert all(is_minimax_model_type(t) for t in ("minimax", "minimax_m1", "minimax_text_01", "MiniMaxM1",
                                                  "MiniMaxText01"))
    assert not any(is_minimax_model_type(t) for t in ("qwen2", "llama", "minimax_m2", "", None))
    for model_type, theirs in (("MiniMaxM1", False), ("minimax", False), ("qwen2", True)):
        d = tmp_path / model_type
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"model_type": model_type}))
        assert is_transformers_dir(d) is theirs, model_type

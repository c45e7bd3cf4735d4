import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lumos.core.errors import LumosError
from lumos.models import HybridLM, load_pretrained, save_pretrained
from lumos.models.checkpoint.pretrained import INDEX_NAME, checkpoint_size
from lumos.testing import assert_close
from models._factories import tiny_lumos, tiny_transformers

IDS = torch.randint(0, 61, (2, 9), generator=torch.Generator().manual_seed(3))


def _keys(path):
    return set(json.loads((path / INDEX_NAME).read_text())["weight_map"])


def test_release_layout_sharded_round_trip(tmp_path):
    model = tiny_lumos([0, 0, 1], num_local_experts=3)
    save_pretrained(model, tmp_path, format="minimax_m1", max_shard_size=20_000)
    shards = sorted(tmp_path.glob("model-*.safetensors"))
    assert len(shards) > 2 and json.loads((tmp_path / "config.json").read_text())["model_type"] == "minimax_m1"
    keys = _keys(tmp_path)
    assert "model.layers.0.block_sparse_moe.experts.2.w3.weight" in keys
    assert "model.layers.0.self_attn.qkv_proj.weight" in keys and "model.layers.2.self_attn.q_proj.weight" in keys
    assert not any("mlp." in k or k.endswith("slope_rate") for k in keys)
    assert len(keys) == 3 + 3 * (2 + 1 + 9) + 2 * 4 + 4
    back = load_pretrained(tmp_path)
    assert torch.equal(back(IDS), model(IDS))


def test_hand_made_release_checkpoint_matches_transformers(tmp_path):
    """transformers' save_pretrained writes release expert names; pair its weights with a release config.json."""
    tf = tiny_transformers([0, 1, 0])
    tf.save_pretrained(tmp_path / "tf")
    sd = {k: v for k, v in load_file(tmp_path / "tf" / "model.safetensors").items()
          if not k.endswith(("slope_rate", "query_decay", "key_decay", "diagonal_decay"))}
    (tmp_path / "rel").mkdir()
    save_file(sd, tmp_path / "rel" / "model.safetensors")
    c = tf.config
    release = {"model_type": "minimax_m1", "vocab_size": 61, "hidden_size": 32, "num_hidden_layers": 3,
               "num_attention_heads": 4, "head_dim": 8, "num_key_value_heads": 2, "intermediate_size": 24,
               "num_local_experts": 4, "num_experts_per_tok": 2, "attn_type_list": [0, 1, 0], "rotary_dim": 8,
               "rope_theta": 1000.0, "postnorm": True, "rms_norm_eps": c.rms_norm_eps,
               "layernorm_full_attention_alpha": 1.3, "layernorm_full_attention_beta": 0.8,
               "layernorm_linear_attention_alpha": 1.1, "layernorm_linear_attention_beta": 0.7,
               "layernorm_mlp_alpha": 1.7, "layernorm_mlp_beta": 0.9, "bos_token_id": 1, "eos_token_id": 2,
               "lightning_slope_variant": "transformers"}
    (tmp_path / "rel" / "config.json").write_text(json.dumps(release))
    ours = load_pretrained(tmp_path / "rel")
    with torch.no_grad():
        assert_close("release layout vs transformers", ours(IDS), tf(IDS).logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("rotary_dim,variant", [(4, "release"), (8, "transformers")])
def test_transformers_layout_loads_in_transformers(tmp_path, rotary_dim, variant):
    from transformers import MiniMaxForCausalLM

    model = tiny_lumos([1, 0, 0], vocab_size=61, rotary_dim=rotary_dim, lightning_slope_variant=variant,
                       pad_token_id=0, bos_token_id=1, eos_token_id=2)
    save_pretrained(model, tmp_path, format="transformers", max_shard_size=30_000)
    keys = _keys(tmp_path)
    assert "model.layers.0.mlp.experts.gate_up_proj" in keys and "model.layers.0.mlp.gate.weight" in keys
    assert "model.layers.1.self_attn.slope_rate" in keys  # transformers then decays with lumos' slopes
    assert not any("block_sparse_moe" in k for k in keys)
    tf = MiniMaxForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert_close("transformers reads lumos", tf(IDS).logits, model(IDS), atol=1e-4, rtol=1e-4)
        assert_close("lumos reads lumos", load_pretrained(tmp_path)(IDS), model(IDS), atol=1e-6, rtol=1e-6)


def test_bf16_checkpoint_and_dtype_override(tmp_path):
    model = tiny_lumos([0, 1])
    save_pretrained(model, tmp_path, dtype=torch.bfloat16)
    with safe_open(str(next(tmp_path.glob("model-*.safetensors"))), "pt") as fh:
        assert fh.get_tensor(next(iter(fh.keys()))).dtype == torch.bfloat16
    assert checkpoint_size(tmp_path) < 0.6 * sum(p.numel() * 4 for p in model.parameters())
    back = load_pretrained(tmp_path)
    assert back.dtype == torch.bfloat16
    up = load_pretrained(tmp_path, dtype=torch.float32)
    assert up.dtype == torch.float32
    assert_close("bf16 weights in fp32", up(IDS), model.to(torch.bfloat16).float()(IDS), atol=1e-5, rtol=1e-5)


def _rewrite_single(path, edit):
    """Load all shards, edit the flat dict, write one model.safetensors (dropping the index)."""
    sd = {}
    for f in path.glob("model-*.safetensors"):
        sd.update(load_file(f))
        f.unlink()
    (path / INDEX_NAME).unlink()
    edit(sd)
    save_file(sd, path / "model.safetensors")


def test_key_errors_are_reported_together(tmp_path):
    save_pretrained(tiny_lumos([0, 1]), tmp_path)

    def edit(sd):
        del sd["model.layers.0.block_sparse_moe.experts.1.w2.weight"]
        sd["model.layers.0.self_attn.extra.weight"] = torch.zeros(2)
        sd["model.norm.weight"] = torch.zeros(5)

    _rewrite_single(tmp_path, edit)
    with pytest.raises(LumosError) as exc:
        load_pretrained(tmp_path)
    msg = str(exc.value)
    assert "missing keys: model.layers.0.block_sparse_moe.experts.1.w2.weight" in msg
    assert "unexpected keys: model.layers.0.self_attn.extra.weight" in msg
    assert "mis-shaped keys: model.norm.weight (5,) (expected (32,))" in msg


def test_corrupt_and_missing_shards_and_wrong_config(tmp_path):
    model = tiny_lumos([0, 1])
    save_pretrained(model, tmp_path, max_shard_size=20_000)
    shard = sorted(tmp_path.glob("model-*.safetensors"))[1]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(LumosError, match="corrupt"):
        load_pretrained(tmp_path)
    shard.unlink()
    with pytest.raises(LumosError, match="missing"):
        load_pretrained(tmp_path)
    save_pretrained(model, tmp_path, max_shard_size=20_000)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 12}))
    with pytest.raises(LumosError, match="mis-shaped keys: model.layers.0.block_sparse_moe.experts.0.w1.weight"):
        load_pretrained(tmp_path)
    with pytest.raises(LumosError, match="not found"):
        load_pretrained(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    for f in tmp_path.glob("*.safetensors"):
        f.unlink()
    (tmp_path / INDEX_NAME).unlink()
    with pytest.raises(LumosError, match="No weights"):
        load_pretrained(tmp_path)


def test_transformers_slope_buffers_are_checked(tmp_path):
    tf = tiny_transformers([0, 1])
    tf.save_pretrained(tmp_path)
    sd = load_file(tmp_path / "model.safetensors")
    sd["model.layers.0.self_attn.slope_rate"] = sd["model.layers.0.self_attn.slope_rate"] * 2
    save_file(sd, tmp_path / "model.safetensors")
    with pytest.raises(LumosError, match="slope_rate"):
        load_pretrained(tmp_path)


def test_loading_builds_on_meta_and_fills_tensor_by_tensor(tmp_path, monkeypatch):
    from safetensors import safe_open as real_safe_open

    import lumos.models.checkpoint.pretrained as ckpt

    model = tiny_lumos([0, 1], hidden_size=64, intermediate_size=128, num_local_experts=8)
    save_pretrained(model, tmp_path, max_shard_size=200_000)
    init_devices, reads = [], []
    orig_init = HybridLM.init_weights

    def spy_init(self):
        init_devices.append(self.model.embed_tokens.weight.device.type)
        orig_init(self)

    class SpyHandle:
        def __init__(self, *a, **k):
            self.inner = real_safe_open(*a, **k)

        def __enter__(self):
            self.h = self.inner.__enter__()
            return self

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

        def keys(self):
            return self.h.keys()

        def get_slice(self, k):
            return self.h.get_slice(k)

        def get_tensor(self, k):
            reads.append(k)
            return self.h.get_tensor(k)

    monkeypatch.setattr(HybridLM, "init_weights", spy_init)
    monkeypatch.setattr("safetensors.safe_open", SpyHandle)
    back = ckpt.load_pretrained(tmp_path)
    assert init_devices == ["meta"]  # no second, initialised copy of the weights is ever built
    assert len(reads) == len(set(reads)) == len(_keys(tmp_path))  # each tensor read exactly once
    assert all(p.device.type == "cpu" for p in back.parameters())
    assert torch.equal(back(IDS), model(IDS))


def test_dtype_names_and_misuse_are_clear(tmp_path):
    model = tiny_lumos([0, 1])
    save_pretrained(model, tmp_path / "bf16", dtype="bfloat16")          # a name works like the torch dtype
    assert load_pretrained(tmp_path / "bf16").dtype == torch.bfloat16
    assert load_pretrained(tmp_path / "bf16", dtype="float32").dtype == torch.float32
    with pytest.raises(LumosError, match="'dtype' parameter of save_pretrained must be None, a floating torch dtype"):
        save_pretrained(model, tmp_path / "x", dtype="bf17")
    (tmp_path / "file").write_text("x")
    with pytest.raises(LumosError, match="is a file; choose a directory path"):
        save_pretrained(model, tmp_path / "file")
    with pytest.raises(LumosError, match="file is a file"):
        save_pretrained(model, tmp_path / "file" / "sub")
    assert (tmp_path / "file").read_text() == "x" and not (tmp_path / "x").exists()
    with pytest.raises(LumosError, match="'expert_parallel' parameter of load_pretrained must be False without a "
                       "device_mesh"):
        load_pretrained(tmp_path / "bf16", expert_parallel=True)
    with pytest.raises(LumosError, match="'device_mesh' parameter of load_pretrained must be a torch DeviceMesh"):
        load_pretrained(tmp_path / "bf16", device_mesh="dp")


def test_a_release_directory_with_a_checkpoints_folder_still_loads(tmp_path):
    """A pretrained directory that also holds an (empty) checkpoints/ folder is still the pretrained model
    (it recursed between load_pretrained and open_checkpoint until RecursionError)."""
    import torch

    from lumos.models import load_pretrained, save_pretrained
    from models._factories import tiny_lumos

    model = tiny_lumos([0, 1])
    save_pretrained(model, tmp_path / "m")
    (tmp_path / "m" / "checkpoints").mkdir()
    loaded = load_pretrained(tmp_path / "m")
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k

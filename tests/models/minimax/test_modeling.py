import pytest
import torch

from lumos.core.errors import LumosError
from lumos.models import HybridLM, MiniMaxConfig, load_pretrained
from lumos.testing import assert_close
from models._factories import tiny_lumos, tiny_transformers

CASES = [  # (layer types 0=lightning 1=softmax, kwargs)
    ([0, 1, 0], dict()),
    ([1, 0, 0, 1], dict(partial=0.5)),
    ([0, 0, 0, 0, 0, 0, 0, 1], dict(heads=4, kv_heads=1, head_dim=16, partial=0.25, block_size=8)),
    ([0, 0], dict(kv_heads=4, tie=True, experts=3, top_k=1)),
    ([1, 1], dict(heads=2, kv_heads=2, partial=0.5, experts=2, top_k=2)),
]


@pytest.mark.parametrize("layer_types,kw", CASES, ids=["LFL", "FLLF-partial", "7to1-gqa4", "LL-tied", "FF"])
def test_logits_equal_transformers(tmp_path, layer_types, kw):
    tf = tiny_transformers(layer_types, **kw)
    tf.config.output_router_logits = True
    tf.save_pretrained(tmp_path)
    ours = load_pretrained(tmp_path)
    assert ours.config.lightning_slope_variant == "transformers"
    block = tf.config.block_size
    for length in (block - 1, block, block + 1, 2 * block + 3):
        ids = torch.randint(0, 61, (2, length), generator=torch.Generator().manual_seed(length))
        with torch.no_grad():
            ref = tf(ids)
            got = ours(ids)
        assert_close(f"logits L={length}", got, ref.logits, atol=1e-4, rtol=1e-4)
        coef = tf.config.router_aux_loss_coef
        assert_close(f"aux loss L={length}", ours.aux_loss, coef * ref.aux_loss, atol=1e-7, rtol=1e-5)


def test_left_padding_equals_alone_and_pads_do_not_matter():
    model = tiny_lumos([0, 1, 0, 1])
    a = torch.randint(0, 256, (1, 6))
    b = torch.randint(0, 256, (1, 11))
    ids = torch.full((2, 11), 256)
    ids[0, 5:], ids[1] = a, b
    mask = torch.ones(2, 11, dtype=torch.long)
    mask[0, :5] = 0
    with torch.no_grad():
        batch = model(ids, attention_mask=mask)
        assert_close("padded row", batch[0, 5:], model(a)[0], atol=1e-5, rtol=1e-5)
        assert_close("full row", batch[1], model(b)[0], atol=1e-5, rtol=1e-5)
        ids2 = ids.clone()
        ids2[0, :5] = torch.randint(0, 256, (5,))  # different padding tokens: same real logits
        assert_close("pad content", model(ids2, attention_mask=mask)[0, 5:], batch[0, 5:], atol=1e-6, rtol=1e-6)


def test_fp32_head_aux_loss_and_gradients():
    model = tiny_lumos([0, 1]).to(torch.bfloat16)
    assert model.model.layers[0].self_attn.slope_rate.dtype == torch.float32  # derived buffers stay fp32
    assert model.model.layers[1].self_attn.rotary.inv_freq.dtype == torch.float32
    ids = torch.randint(0, 256, (2, 5))
    assert model(ids).dtype == torch.bfloat16
    model.lm_head_fp32 = True
    assert model(ids).dtype == torch.float32
    model = tiny_lumos([0, 1]).train()
    loss = model(ids).logsumexp(-1).mean() + model.aux_loss
    assert model.aux_loss.dim() == 0 and model.aux_loss > 0
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_postnorm_false_uses_unnormed_residual():
    on = tiny_lumos([0, 1])
    cfg = MiniMaxConfig(**{**on.config.to_dict(), "postnorm": False})
    off = HybridLM(cfg)
    off.load_state_dict(on.state_dict())
    ids = torch.randint(0, 256, (1, 4))
    with torch.no_grad():
        assert not torch.allclose(on(ids), off(ids))
        h = off.model.embed_tokens(ids)
        layer = off.model.layers[0]
        hn = layer.input_layernorm(h)
        a, _ = layer.self_attn(hn)
        h1 = h * layer.attn_alpha + a * layer.attn_beta
        out, _ = layer(h, token_mask=None, position_ids=torch.arange(4)[None], key_mask=None, cache=None)
        hn2 = layer.post_attention_layernorm(h1)
        m, _ = layer.block_sparse_moe(hn2)
        assert_close("postnorm=false layer", out, h1 * layer.mlp_alpha + m * layer.mlp_beta, atol=1e-6, rtol=1e-6)


def test_bad_inputs():
    model = tiny_lumos([0, 1])
    with pytest.raises(LumosError, match="input_ids"):
        model(torch.tensor([[1, 300]]))
    with pytest.raises(LumosError, match="input_ids"):
        model(torch.tensor([1, 2]))
    with pytest.raises(LumosError, match="attention_mask"):
        model(torch.tensor([[1, 2]]), attention_mask=torch.ones(1, 3))
    with pytest.raises(LumosError, match="config"):
        HybridLM({"hidden_size": 4})


def test_public_api():
    import lumos.layers
    import lumos.models

    assert set(lumos.models.__all__) >= {"HybridLM", "MiniMaxConfig", "ByteTokenizer", "GenerationOutput"}
    for name in lumos.models.__all__:
        assert getattr(lumos.models, name) is not None
    for name in ("SoftmaxAttention", "SparseMoE", "RotaryEmbedding"):
        assert hasattr(lumos.layers, name)


def test_model_module_imports_neither_generation_nor_checkpoints():
    """Generation and checkpoint I/O build on the model, never the reverse (no import circle, no lazy imports)."""
    import ast
    import inspect

    import lumos.models.minimax.modeling as hybrid

    imported = {n.module for n in ast.walk(ast.parse(inspect.getsource(hybrid))) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"lumos.models.generation", "lumos.models.checkpoint.pretrained", "lumos.models.fast_decode"}
    assert not hasattr(hybrid.HybridLM, "generate") and not hasattr(hybrid.HybridLM, "from_pretrained")


def test_tiny_hybrid_is_seeded_and_ends_with_a_softmax_layer():
    from lumos.models import tiny_hybrid

    a, b = tiny_hybrid(32, 3, seed=4), tiny_hybrid(32, 3, seed=4)
    assert a.config.layer_kinds == ["lightning", "lightning", "softmax"]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert tiny_hybrid(32, 2, rotary_dim=4).config.rotary_dim == 4


def test_empty_builds_storage_without_init_recomputes_buffers_and_reties():
    """HybridLM.empty: the one build-on-meta → to_empty → reset buffers → re-tie helper every loader uses."""
    import torch

    from lumos.models.minimax.config import MiniMaxConfig
    from lumos.models.minimax.modeling import HybridLM

    cfg = MiniMaxConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        num_key_value_heads=1, intermediate_size=16, tie_word_embeddings=True, bos_token_id=1,
                        eos_token_id=2, pad_token_id=0)
    seen = []
    empty = HybridLM.empty(cfg, dtype=torch.bfloat16, prepare=lambda m: seen.append(next(m.parameters()).device))
    assert seen == [torch.device("meta")]  # prepare ran before any storage existed
    assert all(p.device.type == "cpu" and p.dtype == torch.bfloat16 for p in empty.parameters())
    assert empty.lm_head.weight is empty.model.embed_tokens.weight
    built = HybridLM(cfg).to(torch.bfloat16)
    for (name, b), (_, ref) in zip(empty.named_buffers(), built.named_buffers()):
        assert torch.equal(b, ref), name  # derived buffers recomputed, not left uninitialised
    untied = HybridLM.empty(cfg, dtype=torch.float32, retie=False)
    assert untied.lm_head.weight is not untied.model.embed_tokens.weight


def test_checkpoint_wrapped_layers_still_run():
    """Activation checkpointing the PyTorch way wraps each decoder layer; none may be skipped (same logits)."""
    import torch
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing

    from lumos.models.minimax.config import MiniMaxConfig
    from lumos.models.minimax.modeling import DecoderLayer, HybridLM

    torch.manual_seed(0)
    model = HybridLM(MiniMaxConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                   intermediate_size=32, num_hidden_layers=2)).eval()
    ids = torch.randint(0, model.config.vocab_size, (2, 9))
    with torch.no_grad():
        plain = model(ids)
        apply_activation_checkpointing(model, check_fn=lambda m: isinstance(m, DecoderLayer))
        assert not any(isinstance(layer, DecoderLayer) for layer in model.model.layers)
        assert len(model.model.decoder_layers()) == 2
        assert torch.equal(model(ids), plain)

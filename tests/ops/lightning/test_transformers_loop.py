import torch

from lumos.ops.lightning import naive_lightning_attention
from lumos.ops.lightning.transformers_loop import transformers_blocked_loop
from lumos.testing import assert_close


def test_copy_matches_the_transformers_module():
    """Run transformers' MiniMaxLightningAttention and redo its op with our copy of the loop in between its own
    projections: the layer outputs must agree, so the benchmark baseline is transformers' code path."""
    from transformers import MiniMaxConfig
    from transformers.models.minimax.modeling_minimax import MiniMaxLightningAttention

    torch.manual_seed(0)
    H, D, L = 4, 8, 600  # 3 blocks of 256, the last one partial
    cfg = MiniMaxConfig(hidden_size=32, num_attention_heads=H, head_dim=D, num_hidden_layers=3, num_key_value_heads=H,
                        layer_types=["linear_attention"] * 3)
    hf = MiniMaxLightningAttention(cfg, 1).eval()
    x = torch.randn(2, L, 32)
    with torch.no_grad():
        ref, ref_state = hf(x, None, None)
        qkv = hf.act_fn(hf.qkv_proj(x)).reshape(2, L, H, 3 * D)
        q, k, v = (t.transpose(1, 2) for t in torch.split(qkv, D, dim=3))
        o, state = transformers_blocked_loop(q, k, v, hf.slope_rate.flatten())
        out = hf.out_proj(torch.sigmoid(hf.output_gate(x)) * hf.norm(o.transpose(1, 2).reshape(2, L, H * D)))
    assert_close("layer output", out, ref, atol=1e-6, rtol=1e-6)
    assert_close("state", state, ref_state, atol=1e-6, rtol=1e-6)
    o_naive, s_naive = naive_lightning_attention(q.double(), k.double(), v.double(), hf.slope_rate.flatten(), None, True)
    assert_close("loop vs naive", o, o_naive, atol=1e-4, rtol=1e-4)

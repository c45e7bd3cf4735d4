import math

import pytest
import torch

from lumos.core.errors import LumosError
from lumos.layers import LightningAttention
from lumos.layers.lightning_attention import alibi_slopes, minimax_slope_rate
from lumos.testing import assert_close


def _hf_layer(hidden, heads, head_dim, layers, layer_idx, block_size):
    from transformers import MiniMaxConfig
    from transformers.models.minimax.modeling_minimax import MiniMaxLightningAttention

    cfg = MiniMaxConfig(hidden_size=hidden, num_attention_heads=heads, head_dim=head_dim, num_hidden_layers=layers,
                        num_key_value_heads=heads, block_size=block_size, layer_types=["linear_attention"] * layers)
    return MiniMaxLightningAttention(cfg, layer_idx).eval()


def _ours_from(hf, hidden, heads, head_dim, layers, layer_idx):
    ours = LightningAttention(hidden, heads, head_dim, minimax_slope_rate(heads, layer_idx, layers, "transformers"),
                              rms_norm_eps=hf.norm.variance_epsilon)
    missing, unexpected = ours.load_state_dict(hf.state_dict(), strict=False)
    assert not missing, missing  # hf's extra buffers (slope_rate, decays) are the only unexpected keys
    assert set(unexpected) <= {"slope_rate", "query_decay", "key_decay", "diagonal_decay"}
    return ours


@pytest.mark.parametrize("L, layer_idx", [(37, 0), (150, 2)])
def test_matches_transformers_minimax(L, layer_idx):
    torch.manual_seed(1)
    hidden, heads, head_dim, layers = 48, 4, 12, 4
    hf = _hf_layer(hidden, heads, head_dim, layers, layer_idx, block_size=16)  # several blocks + a partial one
    for p in hf.parameters():
        p.data.normal_(0, 0.2)
    ours = _ours_from(hf, hidden, heads, head_dim, layers, layer_idx)
    assert_close("slope_rate", ours.slope_rate, hf.slope_rate.flatten(), atol=0, rtol=1e-6)
    x = torch.randn(2, L, hidden)
    mask = torch.ones(2, L, dtype=torch.long)
    mask[1, :5] = 0  # left padding in row 1
    with torch.no_grad():
        ref, ref_state = hf(x, None, mask)
        out, state = ours(x, mask)
    assert_close("output", out, ref, atol=1e-5, rtol=1e-5)
    assert_close("state", state, ref_state, atol=1e-5, rtol=1e-5)


def test_decode_with_state_matches_full_forward():
    torch.manual_seed(2)
    layer = LightningAttention(32, 4, 8, minimax_slope_rate(4, 1, 3))
    x = torch.randn(2, 21, 32)
    full, full_state = layer(x)
    out, state = layer(x[:, :15])
    outs = [out]
    for t in range(15, 21):
        o, state = layer(x[:, t : t + 1], state=state)
        outs.append(o)
    assert_close("decoded output", torch.cat(outs, 1), full, atol=1e-5, rtol=1e-5)
    assert_close("decoded state", state, full_state, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_decode_step_updates_state_in_place_as_forward(dtype):
    torch.manual_seed(4)
    layer = LightningAttention(32, 4, 8, minimax_slope_rate(4, 1, 3), bias=True).to(dtype)
    x = torch.randn(2, 9, 32, dtype=dtype)
    full, full_state = layer(x)
    with torch.no_grad():
        _, state = layer(x[:, :5])
        buf = state.clone()
        outs = [layer.decode_step(x[:, t], buf) for t in range(5, 9)]
    assert buf.dtype == full_state.dtype
    assert_close("decode_step output", torch.stack(outs, 1), full[:, 5:], atol=1e-5, rtol=1e-5)
    assert_close("decode_step state", buf, full_state, atol=1e-5, rtol=1e-5)


def test_padding_never_enters_or_decays_state():
    torch.manual_seed(3)
    layer = LightningAttention(16, 2, 8, minimax_slope_rate(2, 0, 2))
    x = torch.randn(2, 9, 16)
    s0 = torch.randn(2, 2, 8, 8)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[0, :3] = 0  # left padding
    mask[1, 6:] = 0  # right padding
    out, state = layer(x, mask, s0)
    out0, st0 = layer(x[:1, 3:], None, s0[:1])
    out1, st1 = layer(x[1:, :6], None, s0[1:])
    assert_close("left-padded row", out[0, 3:], out0[0], atol=1e-5, rtol=1e-5)
    assert_close("right-padded row", out[1, :6], out1[0], atol=1e-5, rtol=1e-5)
    assert_close("states", state, torch.cat([st0, st1]), atol=1e-5, rtol=1e-5)
    # a decode step whose only token is padding leaves the state as it was
    _, same = layer(x[:, :1], torch.tensor([[0], [1]]), state)
    assert_close("padded step state", same[0], state[0], atol=0, rtol=0)


@pytest.mark.parametrize("padded", [False, True])
def test_backward_reaches_all_parameters(padded):
    layer = LightningAttention(16, 2, 8, minimax_slope_rate(2, 0, 2))
    mask = torch.ones(2, 70, dtype=torch.long)
    mask[0, :9] = 0
    out, state = layer(torch.randn(2, 70, 16), mask if padded else None)
    (out.square().mean() + state.square().mean()).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bfloat16_layer_close_to_float32():
    torch.manual_seed(4)
    layer = LightningAttention(32, 4, 8, minimax_slope_rate(4, 0, 2))
    x = torch.randn(2, 40, 32)
    ref, ref_state = layer(x)
    out, state = layer.to(torch.bfloat16)(x.bfloat16())
    assert out.dtype == torch.bfloat16 and state.dtype == torch.float32
    assert_close("bf16 output", out, ref, atol=5e-2, rtol=5e-2, rms_tol=2e-2)


def test_slope_rates_match_reference_facts():
    s = alibi_slopes(64)
    assert math.isclose(s[0], 2 ** (-1 / 8)) and math.isclose(s[63], 2**-8)
    assert len(alibi_slopes(6)) == 6 and alibi_slopes(6)[:4] == alibi_slopes(4)
    rate = minimax_slope_rate(64, 78, 80)
    assert math.isclose(float(rate[0] / s[0]), 1 - 78 / 79 + 1e-5, rel_tol=1e-6)  # ≈ 0.01267
    assert math.isclose(1 - 78 / 79 + 1e-5, 0.01267, rel_tol=1e-3)
    assert torch.isfinite(minimax_slope_rate(4, 0, 1)).all()


def test_errors():
    with pytest.raises(LumosError, match="'slope_rate'"):
        LightningAttention(16, 2, 8, torch.ones(3))
    layer = LightningAttention(16, 2, 8, torch.ones(2))
    with pytest.raises(LumosError, match="'x'"):
        layer(torch.randn(2, 5, 15))
    with pytest.raises(LumosError, match="'attention_mask'"):
        layer(torch.randn(2, 5, 16), torch.ones(2, 4))
    with pytest.raises(LumosError, match="'variant'"):
        minimax_slope_rate(4, 0, 2, variant="vllm")
    with pytest.raises(LumosError, match="'layer_idx'"):
        minimax_slope_rate(4, 2, 2)

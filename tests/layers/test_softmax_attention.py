import pytest
import torch

from lumos.core.errors import LumosError
from lumos.layers.softmax_attention import (
    _DECODE_MATMUL_MIN_KEYS,
    KVCache,
    SoftmaxAttention,
    attention_mask_4d,
    cached_attention,
    decode_attention,
    softmax_attention,
    softmax_attention_reference,
)
from lumos.testing import assert_close


def _left_pad_mask(lengths, total):
    return torch.arange(total)[None] >= (total - torch.tensor(lengths))[:, None]


@pytest.mark.parametrize("heads,kv_heads,lq,lk,chunk", [(4, 2, 5, 5, 1024), (6, 3, 3, 11, 2), (2, 2, 7, 7, 3),
                                                         (4, 1, 1, 9, 1024)])
def test_fast_matches_reference_with_padding_and_gqa(heads, kv_heads, lq, lk, chunk):
    q = torch.randn(2, heads, lq, 6)
    k, v = torch.randn(2, kv_heads, lk, 6), torch.randn(2, kv_heads, lk, 6)
    mask = attention_mask_4d(_left_pad_mask([lk, max(lk - 4, 1)], lk), lq, lk, q.device)
    out = softmax_attention(q, k, v, mask, query_chunk=chunk)
    assert torch.isfinite(out).all()  # padding queries see their own slot: no NaN
    assert_close("attention", out, softmax_attention_reference(q, k, v, mask), atol=1e-5, rtol=1e-5)


def test_cached_incremental_equals_full_and_padding_is_invisible():
    torch.manual_seed(1)
    layer = SoftmaxAttention(16, 4, 2, 8, rotary_dim=4, rope_theta=100.0)
    x = torch.randn(1, 9, 16)
    pos = torch.arange(9)[None]
    full = layer(x, pos)
    cache = KVCache(1, 2, 8, capacity=2, dtype=torch.float32)  # forces growth
    parts = [layer(x[:, :4], pos[:, :4], cache=cache)]
    for t in range(4, 9):
        parts.append(layer(x[:, t:t + 1], pos[:, t:t + 1], cache=cache))
    assert_close("incremental", torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)
    # the same sequence behind 3 padding tokens (positions restart at 0 on the first real token)
    xp = torch.cat((torch.randn(1, 3, 16) * 50, x), 1)
    key_mask = torch.arange(12)[None] >= 3
    posp = (torch.cumsum(key_mask.long(), 1) - 1).clamp_min(0)
    assert_close("left padded", layer(xp, posp, key_mask=key_mask)[:, 3:], full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("lk", [3, _DECODE_MATMUL_MIN_KEYS + 5])
def test_decode_attention_matches_reference(lk):
    torch.manual_seed(2)
    q, k, v = torch.randn(3, 6, 1, 8), torch.randn(3, 2, lk, 8), torch.randn(3, 2, lk, 8)
    key_mask = _left_pad_mask([lk, max(lk // 2, 1), 0], lk)  # the last row is all padding: sees its own slot only
    for m in (None, key_mask):
        out = decode_attention(q.view(3, 2, 3, 8), k, v, m, 0.3).view(3, 6, 1, 8)  # 3 query heads per KV head
        assert torch.isfinite(out).all()
        ref = softmax_attention_reference(q, k, v, attention_mask_4d(m, 1, lk, q.device), scale=0.3)
        assert_close("decode attention", out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("b,hkv,g,n,d", [(1, 2, 4, 1, 8), (2, 1, 3, 17, 6), (3, 2, 1, 40, 16)])
def test_cached_attention_op_matches_reference(b, hkv, g, n, d):
    gen = torch.Generator().manual_seed(n)
    q, k, v = (torch.randn(b, hkv, m, d, generator=gen) for m in (g, n, n))
    valid = torch.rand(b, n, generator=gen) > 0.3
    valid[:, -1] = True  # the new token's own slot
    out = cached_attention(q, k, v, valid, d ** -0.5)
    # the same attention as g·hkv query heads over hkv KV heads, one query each
    ref = softmax_attention_reference(q.reshape(b, hkv * g, 1, d), k, v, valid[:, None, None, :], scale=d ** -0.5)
    assert_close("attention", out.reshape(b, hkv * g, 1, d), ref, atol=1e-5, rtol=1e-5)
    torch.library.opcheck(cached_attention, (q, k, v, valid, d ** -0.5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("heads,kv_heads,rotary", [(4, 2, 4), (4, 1, 8), (2, 2, 2)])
def test_decode_step_equals_forward_on_a_left_padded_batch(heads, kv_heads, rotary, dtype):
    """Token by token through ``decode_step`` over static buffers == one forward over the whole padded batch."""
    torch.manual_seed(heads + kv_heads + rotary)
    layer = SoftmaxAttention(16, heads, kv_heads, 8, rotary_dim=rotary, rope_theta=100.0).to(dtype)
    t = 7
    x = torch.randn(2, t, 16, dtype=dtype)
    key_mask = _left_pad_mask([t, 4], t)
    pos = (torch.cumsum(key_mask.long(), 1) - 1).clamp_min(0)
    full = layer(x, pos, key_mask=key_mask)
    k_buf = torch.zeros(2, kv_heads, t + 2, 8, dtype=dtype)
    v_buf = torch.zeros_like(k_buf)
    valid = torch.zeros(2, t + 2, dtype=torch.bool)
    valid[:, :t] = key_mask
    with torch.no_grad():
        steps = [layer.decode_step(x[:, i], pos[:, i], valid, i, k_buf, v_buf) for i in range(t)]
    got = torch.stack(steps, 1)
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    assert_close("decode steps", got[1, 3:].float(), full[1, 3:].float(), atol=tol, rtol=tol)  # real tokens
    assert_close("decode steps row 0", got[0].float(), full[0].float(), atol=tol, rtol=tol)


def test_long_cache_decode_equals_full_with_and_without_padding():
    torch.manual_seed(3)
    layer = SoftmaxAttention(16, 4, 2, 8, rotary_dim=4, rope_theta=100.0)
    t = _DECODE_MATMUL_MIN_KEYS + 3
    x = torch.randn(1, t, 16)
    pos = torch.arange(t)[None]
    full = layer(x, pos)
    cache = KVCache(1, 2, 8, capacity=t, dtype=torch.float32)
    parts = [layer(x[:, :t - 3], pos[:, :t - 3], cache=cache)]
    parts += [layer(x[:, i:i + 1], pos[:, i:i + 1], cache=cache) for i in range(t - 3, t)]
    assert_close("incremental", torch.cat(parts, 1)[:, -4:], full[:, -4:], atol=1e-5, rtol=1e-5)
    # behind 5 padding tokens: each decode step masks them
    xp = torch.cat((torch.randn(1, 5, 16) * 50, x), 1)
    key_mask = torch.arange(t + 5)[None] >= 5
    posp = (torch.cumsum(key_mask.long(), 1) - 1).clamp_min(0)
    cache = KVCache(1, 2, 8, capacity=t + 5, dtype=torch.float32)
    layer(xp[:, :t + 2], posp[:, :t + 2], key_mask=key_mask[:, :t + 2], cache=cache)
    parts = [layer(xp[:, i:i + 1], posp[:, i:i + 1], key_mask=key_mask[:, :i + 1], cache=cache)
             for i in range(t + 2, t + 5)]
    assert_close("left padded decode", torch.cat(parts, 1), full[:, -3:], atol=1e-5, rtol=1e-5)


def test_bad_construction_and_mask_shape():
    with pytest.raises(LumosError, match="num_kv_heads"):
        SoftmaxAttention(16, 4, 3, 4, 4)
    with pytest.raises(LumosError, match="rotary_dim"):
        SoftmaxAttention(16, 4, 2, 4, 6)
    layer = SoftmaxAttention(16, 4, 2, 4, 4)
    with pytest.raises(LumosError, match="key_mask"):
        layer(torch.randn(1, 3, 16), torch.arange(3)[None], key_mask=torch.ones(1, 5, dtype=torch.bool))

"""Softmax attention with grouped-query heads (GQA), partial RoPE and a growable KV cache.

MiniMax's softmax layers (reference §2.4): ``q_proj`` hidden→H·d, ``k_proj``/``v_proj`` hidden→H_kv·d,
``o_proj`` H·d→hidden, no bias, scale 1/√d, RoPE on the first ``rotary_dim`` dims of each head.

Masking: a key is visible to a query when it is causal (key slot ≤ query slot) and real (``key_mask`` True),
or when it is the query's own slot — so a padding query still has one key and never produces NaN. With left
padding, real queries never see padding keys. :func:`softmax_attention` is the fast path (torch SDPA);
:func:`softmax_attention_reference` is its explicit per-head, per-query twin.
A decode step (one new token) over ≥ ``_DECODE_MATMUL_MIN_KEYS`` cached keys, or with padding, uses
:func:`decode_attention` (scores as K·Qᵀ, no 4D mask): ~25% faster than SDPA's CPU kernel at 16K keys.
:meth:`SoftmaxAttention.decode_step` is the one-token step over static KV buffers that the model's eager and
compiled decoding both run.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.errors import bad_param
from lumos.core.validation import check_float, check_int, check_positive_int
from lumos.layers.decode import decode_linear
from lumos.layers.rope import RotaryEmbedding, apply_rotary

__all__ = ["KVCache", "SoftmaxAttention", "softmax_attention", "softmax_attention_reference", "attention_mask_4d",
           "decode_attention", "cached_attention"]


class KVCache:
    """Keys and values of one softmax layer, preallocated to ``capacity`` slots (doubles when full).

    ``k``/``v``: (B, H_kv, capacity, d); the first ``length`` slots are filled.
    """

    def __init__(self, batch: int, num_kv_heads: int, head_dim: int, capacity: int, dtype: torch.dtype,
                 device: torch.device | str = "cpu") -> None:
        capacity = max(int(capacity), 1)
        self.k = torch.zeros(batch, num_kv_heads, capacity, head_dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)
        self.length = 0

    @property
    def capacity(self) -> int:
        return int(self.k.shape[2])

    def reserve(self, need: int) -> None:
        """Make room for ``need`` slots in all (at least doubling the buffers when they grow)."""
        if need > self.capacity:
            grow = max(need, 2 * self.capacity) - self.capacity
            pad = self.k.new_zeros(*self.k.shape[:2], grow, self.k.shape[3])
            self.k = torch.cat((self.k, pad), dim=2)
            self.v = torch.cat((self.v, pad.clone()), dim=2)

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more slots as filled (written in place by :meth:`SoftmaxAttention.decode_step`)."""
        if self.length + n > self.capacity:
            raise RuntimeError(f"KVCache: {self.length + n} slots filled but capacity is {self.capacity}")
        self.length += n

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store (B, H_kv, T, d) new keys/values; return views of all filled slots."""
        need = self.length + k.shape[2]
        self.reserve(need)
        self.k[:, :, self.length:need] = k
        self.v[:, :, self.length:need] = v
        self.length = need
        return self.k[:, :, :need], self.v[:, :, :need]

    def select(self, index: torch.Tensor) -> None:
        """Keep the batch rows ``index`` (e.g. to drop finished sequences)."""
        self.k, self.v = self.k[index], self.v[index]


def attention_mask_4d(key_mask: torch.Tensor | None, q_len: int, k_len: int, device: torch.device) -> torch.Tensor:
    """Boolean (B or 1, 1, q_len, k_len) mask: causal ∧ real key, plus each query's own slot.

    Queries occupy the last ``q_len`` of the ``k_len`` slots.
    """
    q_slot = torch.arange(k_len - q_len, k_len, device=device)[:, None]
    k_slot = torch.arange(k_len, device=device)[None, :]
    causal = k_slot <= q_slot  # (q, k)
    if key_mask is None:
        return causal[None, None]
    allowed = causal[None] & key_mask[:, None, :].bool()
    allowed = allowed | (k_slot == q_slot)[None]
    return allowed[:, None]


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                      scale: float | None = None, query_chunk: int = 1024) -> torch.Tensor:
    """Masked softmax attention with GQA, without copying K/V per query head.

    Args:
        q: (B, H, Lq, d); k, v: (B, H_kv, Lk, d) with H % H_kv == 0 (query head h reads KV head h // (H/H_kv)).
        mask: bool, (B or 1, 1, Lq, Lk); True = visible. Every query must see at least one key.
        scale: default 1/√d.
        query_chunk: queries processed per SDPA call (bounds the score memory to chunk × Lk).

    Returns:
        (B, H, Lq, d).
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    b, h, lq, d = q.shape
    hkv = k.shape[1]
    g = h // hkv
    outs = []
    for s in range(0, lq, query_chunk):
        qc = q[:, :, s:s + query_chunk]
        mc = mask[:, :, s:s + query_chunk]
        n = qc.shape[2]
        qg = qc.reshape(b, hkv, g * n, d)  # heads h = kv·g + j -> rows (j, i)
        mg = mc.unsqueeze(2).expand(mc.shape[0], 1, g, n, mc.shape[-1]).reshape(mc.shape[0], 1, g * n, mc.shape[-1])
        og = F.scaled_dot_product_attention(qg, k, v, attn_mask=mg, scale=scale)
        outs.append(og.reshape(b, h, n, d))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


#: decode steps (one query) over at least this many keys use :func:`decode_attention` instead of SDPA
_DECODE_MATMUL_MIN_KEYS = 2048


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None,
                     scale: float) -> torch.Tensor:
    """One new token per sequence, its g query heads per KV head grouped: q (B, H_kv, g, d), k/v (B, H_kv, n, d),
    ``valid`` (B, n) bool or None (all visible) -> (B, H_kv, g, d); query head kv·g + j is row (kv, j).

    The last slot (the new token's own) is always visible. Scores are computed as K·Qᵀ (n × g per KV head: one
    pass over K, much faster on CPU than Q·Kᵀ or the SDPA kernel for a handful of query rows), and no
    (B, 1, 1, n) mask is built when ``valid`` is None.
    """
    n = k.shape[2]
    s = torch.matmul(k, q.transpose(-1, -2)).transpose(-1, -2).contiguous().mul_(scale)  # (B, H_kv, g, n)
    if valid is not None:
        hide = ~valid.bool()
        hide[:, n - 1] = False
        s.masked_fill_(hide[:, None, None, :], float("-inf"))
    return torch.matmul(torch.softmax(s, dim=-1), v)


@torch.library.custom_op("lumos::cached_attention", mutates_args=())
def cached_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor, scale: float
                     ) -> torch.Tensor:
    """:func:`decode_attention` as an op that is opaque to ``torch.compile`` (inductor keeps its K·Qᵀ layout: a few %
    faster per step at 16K keys than SDPA inside the graph, in float32)."""
    return decode_attention(q, k, v, valid, scale)


@cached_attention.register_fake
def _cached_attention_fake(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor, scale: float
                           ) -> torch.Tensor:
    return q.new_empty(*q.shape[:-1], v.shape[-1])


def softmax_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                                scale: float | None = None) -> torch.Tensor:
    """Slow twin of :func:`softmax_attention`: for each (b, h, i), softmax over visible keys j of q·k_j·scale,
    with query head h reading KV head h // (H / H_kv). Float64 inside."""
    q_scale: float = q.shape[-1] ** -0.5 if scale is None else scale
    b_, h_, lq, _ = q.shape
    groups = h_ // k.shape[1]
    mask = mask.expand(b_, h_, lq, k.shape[2])
    out = torch.zeros(q.shape, dtype=torch.float64)
    for b in range(b_):
        for h in range(h_):
            kh, vh = k[b, h // groups].double(), v[b, h // groups].double()
            for i in range(lq):
                vis = mask[b, h, i]
                s = (kh[vis] @ q[b, h, i].double()) * q_scale
                out[b, h, i] = torch.softmax(s, 0) @ vh[vis]
    return out.to(q.dtype)


class SoftmaxAttention(nn.Module):
    """GQA softmax attention with partial RoPE (MiniMax softmax layer; transformers/release names).

    Args:
        hidden_size: model width.
        num_heads: query heads H.
        num_kv_heads: key/value heads H_kv (H % H_kv == 0).
        head_dim: d.
        rotary_dim: dims of each head that RoPE rotates (even, ≤ d).
        rope_theta: RoPE base.

    ``forward(x (B, L, hidden), position_ids (B, L), key_mask (B, T_k) bool or None, cache=None) -> (B, L, hidden)``
    where T_k counts all key slots (cached + new). With a :class:`KVCache` the new keys/values are appended.
    """

    def __init__(self, hidden_size: int, num_heads: int, num_kv_heads: int, head_dim: int, rotary_dim: int,
                 rope_theta: float = 10000.0) -> None:
        super().__init__()
        for name, val in (("hidden_size", hidden_size), ("num_heads", num_heads), ("num_kv_heads", num_kv_heads),
                          ("head_dim", head_dim)):
            check_positive_int(val, name, owner="SoftmaxAttention")
        if num_heads % num_kv_heads:
            raise bad_param("num_kv_heads", f"a divisor of num_heads={num_heads}", num_kv_heads, owner="SoftmaxAttention")
        check_int(rotary_dim, "rotary_dim", 0, head_dim, owner="SoftmaxAttention")
        check_float(rope_theta, "rope_theta", 1.0, owner="SoftmaxAttention", low_inclusive=False)
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.q_proj = nn.Linear(hidden_size, num_heads * head_dim, bias=False)
        self.k_proj = nn.Linear(hidden_size, num_kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(hidden_size, num_kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(num_heads * head_dim, hidden_size, bias=False)
        self.rotary = RotaryEmbedding(rotary_dim, rope_theta)
        self.scale = 1.0 / math.sqrt(head_dim)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor, key_mask: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = self.rotary(position_ids.expand(b, n))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.append(k, v)
        if key_mask is not None and key_mask.shape[-1] != k.shape[2]:
            raise bad_param("key_mask", f"a (B, {k.shape[2]}) mask over all key slots", tuple(key_mask.shape),
                            owner="SoftmaxAttention")
        no_pad = key_mask is None or bool(key_mask.all())
        if no_pad and n == k.shape[2]:  # no padding, no cache offset: causal SDPA (fused kernel, no L×L mask)
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale, enable_gqa=True)
        elif n == 1 and (not no_pad or k.shape[2] >= _DECODE_MATMUL_MIN_KEYS):  # decode step over a long cache
            g = self.num_heads // self.num_kv_heads
            o = decode_attention(q.view(b, self.num_kv_heads, g, self.head_dim), k, v, None if no_pad else key_mask,
                                 self.scale).view(b, self.num_heads, 1, self.head_dim)
        elif no_pad and n == 1:  # one new token sees every cached key; query heads grouped per KV head
            g = self.num_heads // self.num_kv_heads
            o = F.scaled_dot_product_attention(q.view(b, self.num_kv_heads, g, self.head_dim), k, v, scale=self.scale)
            o = o.view(b, self.num_heads, 1, self.head_dim)
        elif no_pad:
            o = softmax_attention(q, k, v, attention_mask_4d(None, n, k.shape[2], x.device), scale=self.scale)
        else:
            o = softmax_attention(q, k, v, attention_mask_4d(key_mask, n, k.shape[2], x.device), scale=self.scale)
        return self.o_proj(o.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim))

    def decode_step(self, x: torch.Tensor, position: torch.Tensor, valid: torch.Tensor, slot: int,
                    k_cache: torch.Tensor, v_cache: torch.Tensor) -> torch.Tensor:
        """One new token per sequence over static KV buffers (inference; what the model's eager and compiled
        decoding both run).

        Args:
            x: (B, hidden) the new tokens' inputs. position: (B,) long, their RoPE positions.
            valid: (B, ≥ slot + 1) bool, the key slots each new token attends to (its own slot included).
            slot: the slot the new keys/values are written to (= tokens cached so far); slots ≤ ``slot`` are read.
            k_cache: (B, H_kv, capacity, d) buffer, written in place at ``slot``.
            v_cache: (B, H_kv, capacity, d) buffer, written in place at ``slot``.

        Returns:
            (B, hidden). In float32 the attention is :func:`cached_attention` (scores as K·Qᵀ); in bf16/fp16 SDPA,
            whose reduced-precision kernel is the faster one.
        """
        b = x.shape[0]
        h, hkv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q = decode_linear(x, self.q_proj.weight).view(b, h, 1, d)
        k = decode_linear(x, self.k_proj.weight).view(b, hkv, 1, d)
        v = decode_linear(x, self.v_proj.weight).view(b, hkv, 1, d)
        cos, sin = self.rotary(position[:, None])  # (B, 1, r/2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        # narrow keeps ``slot`` symbolic under torch.compile (indexing would specialise it); the explicit shape
        # unifies the batch sizes (a broadcasting copy would specialise them)
        shape = (k_cache.shape[0], hkv, 1, d)
        k_cache.narrow(2, slot, 1).copy_(k.reshape(shape))
        v_cache.narrow(2, slot, 1).copy_(v.reshape(shape))
        n = slot + 1
        qg = q.view(b, hkv, h // hkv, d).to(k_cache.dtype)  # the g query heads of a KV head: one pass per KV head
        keys, values, mask = k_cache[:, :, :n], v_cache[:, :, :n], valid[:, :n]
        if k_cache.dtype != torch.float32:
            o = F.scaled_dot_product_attention(qg, keys, values, attn_mask=mask[:, None, None], scale=self.scale)
        elif torch.compiler.is_compiling():
            o = cached_attention(qg, keys, values, mask, self.scale)
        else:
            o = decode_attention(qg, keys, values, mask, self.scale)
        return decode_linear(o.reshape(b, h * d).to(x.dtype), self.o_proj.weight)

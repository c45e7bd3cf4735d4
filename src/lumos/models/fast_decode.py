"""Compiled one-token decode step for :class:`~lumos.models.hybrid.HybridLM` (latency-bound decoding).

At small batch a decode step reads every active weight once and does little arithmetic with it, so in eager
PyTorch about half of a step is per-op overhead (a few µs for each of ~800 small ops). :func:`decode_step` is
the same step written as one pure tensor function over static-shape buffers, which ``torch.compile`` turns into
a handful of fused kernels:

- lightning layers: S ← λ·S + kᵀv, o = q·S on the cached (B, H, D, D) float32 state (updated in place);
- softmax layers: the new key/value is written into slot ``slot`` of the preallocated KV buffers and the query
  attends over the filled slots marked in ``valid`` (B, capacity) — no growing tensors; batch size, capacity and
  ``slot`` are symbolic, so one compiled graph serves every step. In float32 the attention itself is the custom
  op :func:`cached_attention` (scores as K·Qᵀ, opaque to the compiler: a few % faster per step at 16K than SDPA
  inside the graph); in bf16/fp16 it is SDPA, whose reduced-precision kernel is the faster one;
- the MoE computes only the top-k experts of each row, reading their weights by index inside a fused
  reduction (no copy of the expert weights, no per-expert loop, no host synchronisation). This reads
  B·top_k expert matrices, so it is used while B·top_k ≤ num_experts or those reads are small
  (:func:`fast_path_applies`); larger batches of large experts are compute-bound and use the eager,
  expert-grouped path.

:func:`decode_step` runs as is in eager mode too: that is its oracle in the tests (against ``model(tok, cache)``).
``torch.compile`` needs a C++ compiler on CPU; when compiling fails, :func:`compiled_decode_step` warns once and
falls back to the eager model.
"""

from __future__ import annotations

import functools
import itertools
import logging
import types
import warnings
import weakref
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F

from lumos.core.validation import check_choice
from lumos.layers.moe import route
from lumos.layers.rope import apply_rotary
from lumos.layers.softmax_attention import _decode_attention
from lumos.ops.lightning.recurrent import recurrent_step

if TYPE_CHECKING:
    from lumos.models.hybrid import HybridCache, HybridLM

__all__ = ["decode_step", "compiled_decode_step", "fast_path_applies", "FastDecoder", "cached_attention"]


def _linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x (B, in) · wᵀ as a fused reduction (float32 accumulation): at small B, one pass over w."""
    y = (w.float() * x.float()[:, None, :]).sum(-1).to(x.dtype)
    return y if bias is None else y + bias


def _lightning(attn: Any, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    h, d = attn.num_heads, attn.head_dim
    qkv = F.silu(_linear(x, attn.qkv_proj.weight, attn.qkv_proj.bias)).view(b, h, 1, 3 * d)
    q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
    o, new = recurrent_step(q, k, v, attn.slope_rate, state)  # S ← λ·S + kᵀv, o = q·S
    state.copy_(new)
    o = o.reshape(b, h * d)
    o = attn.norm(o)
    o = torch.sigmoid(_linear(x, attn.output_gate.weight, attn.output_gate.bias)) * o
    return _linear(o, attn.out_proj.weight, attn.out_proj.bias)


def _softmax(attn: Any, x: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor, slot: int,
             k_buf: torch.Tensor, v_buf: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    h, hkv, d = attn.num_heads, attn.num_kv_heads, attn.head_dim
    q = _linear(x, attn.q_proj.weight).view(b, h, d)
    k = _linear(x, attn.k_proj.weight).view(b, hkv, d)
    v = _linear(x, attn.v_proj.weight).view(b, hkv, d)
    cos, sin = attn.rotary(pos[:, None])  # (B, 1, r/2)
    q = apply_rotary(q[:, :, None], cos, sin)[:, :, 0]
    k = apply_rotary(k[:, :, None], cos, sin)[:, :, 0]
    # narrow keeps ``slot`` symbolic (indexing would specialise it); the explicit view unifies the batch sizes (a
    # broadcasting copy would specialise them)
    shape = (k_buf.shape[0], hkv, 1, d)
    k_buf.narrow(2, slot, 1).copy_(k.reshape(shape))
    v_buf.narrow(2, slot, 1).copy_(v.reshape(shape))
    n = slot + 1  # filled slots (a symbolic size in the compiled graph)
    # the g query heads of a KV head are g "queries" over its keys: one pass over the cache per KV head
    qg = q.view(b, hkv, h // hkv, d).to(k_buf.dtype)
    if k_buf.dtype == torch.float32:  # K·Qᵀ streams the cache faster than SDPA's CPU kernel in float32 ...
        o = cached_attention(qg, k_buf[:, :, :n], v_buf[:, :, :n], valid[:, :n], attn.scale)
    else:  # ... while in bf16/fp16 SDPA's kernel wins
        o = F.scaled_dot_product_attention(qg, k_buf[:, :, :n], v_buf[:, :, :n], attn_mask=valid[:, None, None, :n],
                                           scale=attn.scale)
    return _linear(o.reshape(b, h * d).to(x.dtype), attn.o_proj.weight)


@torch.library.custom_op("lumos::cached_attention", mutates_args=())
def cached_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor, scale: float
                     ) -> torch.Tensor:
    """Decode attention of g query rows per KV head over a KV cache: q (B, H_kv, g, d), k/v (B, H_kv, n, d),
    valid (B, n) bool -> (B, H_kv, g, d): the softmax layer's eager decode attention (scores as K·Qᵀ, one streaming
    pass over K) wrapped as an op that is opaque to the compiler, so inductor keeps its layout."""
    b, hkv, g, d = q.shape
    return _decode_attention(q.reshape(b, hkv * g, 1, d), k, v, valid, scale).view(b, hkv, g, v.shape[-1])


@cached_attention.register_fake
def _cached_attention_fake(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor, scale: float
                           ) -> torch.Tensor:
    return q.new_empty(*q.shape[:-1], v.shape[-1])


def _moe(moe: Any, x: torch.Tensor) -> torch.Tensor:
    _, top_w, top_i = route(_linear(x, moe.gate.weight), moe.top_k)  # (B, k)
    xf = x.float()[:, None, None, :]
    a = (moe.w1[top_i].float() * xf).sum(-1)  # (B, k, I): indexed weights read inside the reduction
    g = (moe.w3[top_i].float() * xf).sum(-1)
    mid = (F.silu(a.to(x.dtype)) * g.to(x.dtype)).float()
    out = (moe.w2[top_i].float() * mid[:, :, None, :]).sum(-1)  # (B, k, H)
    return (out.to(x.dtype) * top_w[..., None].to(x.dtype)).sum(1)


def decode_step(model: HybridLM, tok: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor, slot: int,
                states: list[torch.Tensor], kv: list[tuple[torch.Tensor, torch.Tensor]],
                lm_head_fp32: bool | None = None) -> torch.Tensor:
    """One token per sequence through ``model``; updates ``states`` and the KV buffers in place.

    Args:
        tok: (B,) long new tokens. pos: (B,) long RoPE positions of the new tokens.
        valid: (B, capacity) bool, key slots the new tokens attend to (their own slot included).
        slot: the KV slot the new tokens are written to (= tokens cached so far); attention reads slots ≤ ``slot``.
        states: per lightning layer (in order) its (B, H, D, D) float32 state.
        kv: per softmax layer (in order) its (k, v) buffers (B, H_kv, capacity, d).

    Returns:
        logits (B, V) (float32 when ``lm_head_fp32``, default ``model.lm_head_fp32``).
    """
    h = F.embedding(tok, model.model.embed_tokens.weight)
    li = si = 0
    for layer in model.model.layers:
        hn = layer.input_layernorm(h)
        if layer.kind == "lightning":
            a = _lightning(layer.self_attn, hn, states[li])
            li += 1
        else:
            a = _softmax(layer.self_attn, hn, pos, valid, slot, *kv[si])
            si += 1
        h = (hn if layer.postnorm else h) * layer.attn_alpha + a * layer.attn_beta
        hn = layer.post_attention_layernorm(h)
        m = _moe(layer.block_sparse_moe, hn)
        h = (hn if layer.postnorm else h) * layer.mlp_alpha + m * layer.mlp_beta
    h = model.model.norm(h)
    if model.lm_head_fp32 if lm_head_fp32 is None else lm_head_fp32:
        return _linear(h.float(), model.lm_head.weight.float())
    return _linear(h, model.lm_head.weight)


#: the indexed MoE reads B·top_k expert matrices per layer; beyond B·top_k > num_experts it is still used while
#: those reads stay under this many bytes per layer (cache-resident weights: re-reading them is cheap)
FAST_MOE_BYTES = 16 * 2**20


def fast_path_applies(model: HybridLM, batch: int) -> bool:
    """Whether :func:`decode_step` suits ``batch`` rows of ``model``: B·top_k ≤ num_experts (the latency-bound
    regime) or B·top_k expert matrices ≤ :data:`FAST_MOE_BYTES`, and weights in float32/bfloat16/float16 (float64
    models keep float64 states on the eager path)."""
    c = model.config
    reads = batch * c.num_experts_per_tok
    expert_bytes = 3 * c.intermediate_size * c.hidden_size * model.dtype.itemsize
    small = reads <= c.num_local_experts or reads * expert_bytes <= FAST_MOE_BYTES
    return small and model.dtype != torch.float64


_COMPILED: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], Callable[..., torch.Tensor]]] = \
    weakref.WeakKeyDictionary()
_SERIAL = itertools.count()
#: why compiling failed in this process (then every decoder runs eagerly), or None
_compile_error: str | None = None


def _keep_guard(entry: Any) -> bool:
    """Guard filter: drop every guard on the model's modules and parameters (about 250 µs per call for a
    small model, most of it the parameters' tensor guards), keep those on the step's inputs (tokens, positions,
    states, KV buffers). Safe because each (model, dtype, device) gets its own compiled code object (see
    :func:`compiled_decode_step`): a model's structure and parameter shapes are fixed after construction, a cast or a
    move builds new code, and ``lm_head_fp32``, the one attribute that may change, is passed as an argument."""
    return not entry.orig_guard.source.is_unspecialized_nn_module()


def compiled_decode_step(model: HybridLM) -> Callable[..., torch.Tensor]:
    """``torch.compile(decode_step)`` bound to ``model``, built once per model (and dtype/device) and compiled
    lazily on its first call.

    Batch size, KV capacity and the slot are symbolic, so later calls reuse the compiled code. Per-call overhead is
    kept low: module and parameter guards are filtered out (:func:`_keep_guard`) and float attributes (norm eps,
    α/β) are compiled in as constants. Dynamo caches compiled code per code object, so each model gets its own copy
    of :func:`decode_step`'s code (the filtered guards would otherwise not tell two models apart).
    """
    key = (model.dtype, model.device)
    entry = _COMPILED.get(model)
    if entry is None or entry[0] != key:
        # inductor's C++ build logs "No CUDA runtime is found" on every CPU-only machine: not news to a user
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        code = decode_step.__code__.replace(co_name=f"decode_step_{next(_SERIAL)}")
        own = types.FunctionType(code, decode_step.__globals__, code.co_name, decode_step.__defaults__)
        compiled = torch.compile(own, dynamic=True,
                                 options={"guard_filter_fn": lambda entries: [_keep_guard(e) for e in entries]})

        def fn(*args: Any) -> torch.Tensor:
            with torch._dynamo.config.patch(specialize_float=True):
                return compiled(model, *args, bool(model.lm_head_fp32))

        entry = _COMPILED[model] = (key, fn)
    return entry[1]


class FastDecoder:
    """Drives :func:`decode_step` over a :class:`HybridCache` filled by a prefill.

    The cache's KV buffers must have room for every token to come (``capacity ≥ length + steps``). After each
    :meth:`step` the cache's bookkeeping (KV lengths, key mask, positions) is as the eager path leaves it.
    """

    def __init__(self, model: HybridLM, cache: HybridCache, backend: str = "compiled") -> None:
        """``backend``: "compiled" (``torch.compile(decode_step)``), "function" (:func:`decode_step` run eagerly:
        the oracle of the compiled code) or "model" (the eager ``model(tok, cache=cache)``; also where compiling
        failed)."""
        check_choice(backend, "backend", ("compiled", "function", "model"), owner="FastDecoder")
        self.model, self.cache = model, cache
        if backend == "compiled" and _compile_error is not None:
            backend = "model"
        self.backend = backend
        self.fn: Callable[..., torch.Tensor] | None = None
        if backend == "model":  # the cache is used as it is (any dtype, growing KV caches)
            return
        kinds = model.config.layer_kinds
        b = cache.key_mask.shape[0]
        self.states = []
        for i, kind in enumerate(kinds):
            if kind == "lightning":
                s = cache.states[i]
                if s is None:
                    c = model.config
                    s = torch.zeros(b, c.num_attention_heads, c.head_dim, c.head_dim, device=model.device)
                cache.states[i] = s = s.float().contiguous()
                self.states.append(s)
        self.kv = [(c.k, c.v) for c in cache.kv if c is not None]
        # key slots visible to the next token (softmax layers only; an all-lightning model needs none)
        cap = min((c.k.shape[2] for c in cache.kv if c is not None), default=0)
        self.valid = torch.zeros(b, cap, dtype=torch.bool, device=model.device)
        self.valid[:, : min(cap, cache.length)] = cache.key_mask[:, :cap]
        self.fn = compiled_decode_step(model) if backend == "compiled" else functools.partial(decode_step, model)

    def step(self, tok: torch.Tensor) -> torch.Tensor:
        """Feed ``tok`` (B,) (every row real); returns logits (B, V)."""
        cache = self.cache
        if self.fn is None:
            return self.model(tok[:, None], cache=cache)[:, -1]
        t = cache.length
        if self.kv and t >= self.valid.shape[1]:
            raise RuntimeError(f"FastDecoder: KV capacity exhausted at {t} tokens; allocate the cache with room for "
                               "every generated token")
        if self.kv:
            self.valid[:, t] = True
        args = (tok, cache.next_position, self.valid, t, self.states, self.kv)
        try:
            logits = self.fn(*args)
        except Exception as exc:  # no C++ compiler, or an inductor bug: decode eagerly from now on
            if self.backend != "compiled":
                raise
            global _compile_error
            _compile_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            warnings.warn(f"torch.compile of the decode step failed ({_compile_error}); decoding in eager mode",
                          RuntimeWarning, stacklevel=2)
            self.backend, self.fn = "model", None
            if self.kv:
                self.valid[:, t] = False
            return self.step(tok)
        for c in cache.kv:
            if c is not None:
                c.length = t + 1
        if self.kv:
            cache.key_mask = self.valid[:, : t + 1]
        else:
            cache.key_mask = torch.cat((cache.key_mask, cache.key_mask.new_ones(cache.key_mask.shape[0], 1)), 1)
        cache.next_position = cache.next_position + 1
        return logits

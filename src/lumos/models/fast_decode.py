"""Compiled one-token decode step for :class:`~lumos.models.minimax.modeling.HybridLM` (latency-bound decoding).

At small batch a decode step reads every active weight once and does little arithmetic with it, so in eager
PyTorch about half of a step is per-op overhead (a few µs for each of ~800 small ops). :meth:`HybridLM.decode_step
<lumos.models.minimax.modeling.HybridLM.decode_step>` — the model's one decode path, composed from each layer's own
``decode_step`` over static buffers — is compiled here with ``torch.compile`` into a handful of fused kernels
(:func:`compiled_decode_step`); :class:`FastDecoder` drives it over a :class:`~lumos.models.minimax.modeling.HybridCache`:

- lightning layers: S ← λ·S + kᵀv, o = q·S on the cached (B, H, D, D) float32 state (updated in place);
- softmax layers: the new key/value is written into slot ``slot`` of the preallocated KV buffers and the query
  attends over the filled slots marked in ``valid`` (B, capacity) — no growing tensors; batch size, capacity and
  ``slot`` are symbolic, so one compiled graph serves every step;
- the MoE reads the top-k experts of each row by index inside a fused reduction (no copy of the expert weights,
  no per-expert loop, no host synchronisation). This reads B·top_k expert matrices, so it is used while
  :meth:`SparseMoE.gathers_experts <lumos.layers.moe.SparseMoE.gathers_experts>` holds (:func:`fast_path_applies`);
  larger batches of large experts are compute-bound and decode eagerly.

The same step run eagerly ("function" backend; also what ``model(tok, cache=cache)`` runs) is the compiled
code's oracle in the tests, and both are checked against full forwards. ``torch.compile`` needs a C++ compiler
on CPU; when compiling fails, :class:`FastDecoder` warns once and falls back to the eager model.
"""

from __future__ import annotations

import itertools
import logging
import types
import warnings
import weakref
from typing import Any, Callable

import torch

from lumos.core.validation import check_choice
from lumos.models.minimax.modeling import HybridCache, HybridLM

__all__ = ["compiled_decode_step", "fast_path_applies", "FastDecoder"]


def fast_path_applies(model: HybridLM, batch: int) -> bool:
    """Whether the compiled step suits ``batch`` rows of ``model``: every MoE reads its top-k experts by index
    (:meth:`SparseMoE.gathers_experts <lumos.layers.moe.SparseMoE.gathers_experts>`) and the weights are
    float32/bfloat16/float16 (float64 models decode eagerly), and the model is not sharded."""
    moes = [layer.block_sparse_moe for layer in model.model.decoder_layers()]
    return model.dtype != torch.float64 and not model.is_sharded and all(m.gathers_experts(batch) for m in moes)


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
    """``torch.compile(model.decode_step)``, built once per model (and dtype/device) and compiled
    lazily on its first call.

    Batch size, KV capacity and the slot are symbolic, so later calls reuse the compiled code. Per-call overhead is
    kept low: module and parameter guards are filtered out (:func:`_keep_guard`) and float attributes (norm eps,
    α/β) are compiled in as constants. Dynamo caches compiled code per code object, so each model gets its own copy
    of :meth:`HybridLM.decode_step`'s code (the filtered guards would otherwise not tell two models apart).
    """
    key = (model.dtype, model.device)
    entry = _COMPILED.get(model)
    if entry is None or entry[0] != key:
        # inductor's C++ build logs "No CUDA runtime is found" on every CPU-only machine: not news to a user
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        step = HybridLM.decode_step
        code = step.__code__.replace(co_name=f"decode_step_{next(_SERIAL)}")
        own = types.FunctionType(code, step.__globals__, code.co_name, step.__defaults__)
        compiled = torch.compile(own, dynamic=True,
                                 options={"guard_filter_fn": lambda entries: [_keep_guard(e) for e in entries]})

        def fn(*args: Any) -> torch.Tensor:
            with torch._dynamo.config.patch(specialize_float=True):
                return compiled(model, *args, bool(model.lm_head_fp32))

        entry = _COMPILED[model] = (key, fn)
    return entry[1]


class FastDecoder:
    """Drives :meth:`HybridLM.decode_step` over a :class:`HybridCache` filled by a prefill.

    The cache's KV buffers must have room for every token to come (``capacity ≥ length + steps``). After each
    :meth:`step` the cache's bookkeeping (KV lengths, key mask, positions) is as the eager path leaves it.
    """

    def __init__(self, model: HybridLM, cache: HybridCache, backend: str = "compiled") -> None:
        """``backend``: "compiled" (:func:`compiled_decode_step`), "function" (``model.decode_step`` run eagerly:
        the oracle of the compiled code) or "model" (the eager ``model(tok, cache=cache)``; any model with that
        interface, any dtype, growing KV caches; also where compiling failed)."""
        check_choice(backend, "backend", ("compiled", "function", "model"), owner="FastDecoder")
        self.model, self.cache = model, cache
        if backend == "compiled" and _compile_error is not None:
            backend = "model"
        self.backend = backend
        self.fn: Callable[..., torch.Tensor] | None = None
        if backend == "model":
            return
        self.states, self.kv = cache.step_buffers()
        # key slots visible to the next token (softmax layers only; an all-lightning model needs none)
        b, cap = cache.key_mask.shape[0], cache.capacity or 0
        self.valid = torch.zeros(b, cap, dtype=torch.bool, device=model.device)
        self.valid[:, : min(cap, cache.length)] = cache.key_mask[:, :cap]
        self.fn = compiled_decode_step(model) if backend == "compiled" else model.decode_step

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
        try:
            logits = self.fn(tok, cache.next_position, self.valid, t, self.states, self.kv)
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
        key_mask = self.valid[:, : t + 1] if self.kv else \
            torch.cat((cache.key_mask, cache.key_mask.new_ones(cache.key_mask.shape[0], 1)), 1)
        cache.advance(key_mask)
        return logits

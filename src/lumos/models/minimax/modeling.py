"""``HybridLM``: the MiniMax-M1 hybrid MoE language model (lightning + softmax attention, sparse MoE).

Per layer l (reference §2.2, post-norm form as in every release):
    h_n = RMSNorm(h); h = α_attn·r + β_attn·Attn(h_n); h_n = RMSNorm(h); h = α_mlp·r + β_mlp·MoE(h_n)
with r = h_n when ``postnorm`` (the release) and r = h (the un-normed input) otherwise. ``Attn`` is
lightning attention (``attn_type_list[l] == 0``) or GQA softmax attention with partial RoPE (== 1). Then the
final ``norm`` and ``lm_head`` (optionally in float32: ``model.lm_head_fp32 = True``, the paper's fix for
the train/inference probability mismatch).

Left padding: ``attention_mask`` (B, L) 1 = real. Position ids count real tokens only, softmax layers never
attend to padding, lightning layers never let padding into their state, and the MoE load-balancing loss
ignores padding rows. A :class:`HybridCache` carries one (B, H, D, D) float32 state per lightning layer and
a KV cache per softmax layer, so decoding costs O(1) per token in lightning layers.

Decoding one token per sequence runs :meth:`HybridLM.decode_step`: each layer's own ``decode_step`` over static
buffers (lightning states and KV buffers updated in place), composed once by :meth:`DecoderLayer.decode_step`.
``model(tok (B, 1), cache=cache)`` in inference runs it eagerly; :mod:`lumos.models.fast_decode` compiles it.
Generation (:mod:`lumos.models.generation`) and checkpoint I/O (:mod:`lumos.models.checkpoint.pretrained`) build on this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.errors import LumosError, bad_param
from lumos.core.validation import check_tensor
from lumos.layers.decode import decode_linear
from lumos.layers.lightning_attention import LightningAttention, minimax_slope_rate
from lumos.layers.moe import RouterStats, Routing, SparseMoE, load_balancing_loss
from lumos.layers.norm import RMSNorm
from lumos.layers.softmax_attention import KVCache, SoftmaxAttention
from lumos.models.minimax.config import MiniMaxConfig

__all__ = ["HybridLM", "DecoderLayer", "HybridCache", "tiny_hybrid"]

#: eps of the RMSNorm inside lightning layers (remote code and transformers use 1e-6 regardless of rms_norm_eps).
LIGHTNING_NORM_EPS = 1e-6


@dataclass
class HybridCache:
    """Decoding state of a :class:`HybridLM`.

    Attributes:
        states: per layer, the lightning state (B, H, D, D) float32, or None (softmax layer / not yet filled).
        kv: per layer, the :class:`KVCache` of a softmax layer, or None.
        key_mask: (B, T) bool, True at the real tokens among the T tokens seen so far.
        next_position: (B,) long, the RoPE position of each sequence's next token (= real tokens so far).
    """

    states: list[torch.Tensor | None]
    kv: list[KVCache | None]
    key_mask: torch.Tensor
    next_position: torch.Tensor

    @property
    def length(self) -> int:
        """Token slots seen so far (padding included)."""
        return int(self.key_mask.shape[1])

    def reserve(self, length: int) -> None:
        """Make room for ``length`` token slots in every KV cache."""
        for c in self.kv:
            if c is not None:
                c.reserve(length)

    @property
    def capacity(self) -> int | None:
        """Token slots the KV buffers hold without growing (None when there is no softmax layer)."""
        return min((c.capacity for c in self.kv if c is not None), default=None)

    def step_buffers(self) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        """The static buffers a one-token decode step updates in place: the lightning states (made contiguous in
        the cache) and the (k, v) buffers of the softmax layers, each in layer order."""
        for i, s in enumerate(self.states):
            if s is not None and not s.is_contiguous():
                self.states[i] = s.contiguous()
        return [s for s in self.states if s is not None], [(c.k, c.v) for c in self.kv if c is not None]

    def advance(self, key_mask: torch.Tensor) -> None:
        """Book one token per sequence written at slot :attr:`length` by a decode step: ``key_mask`` (B, length + 1)
        bool is the new key mask (True at real tokens)."""
        for c in self.kv:
            if c is not None:
                c.advance(1)
        self.key_mask = key_mask
        self.next_position = self.next_position + 1

    def nbytes(self) -> int:
        """Bytes held: lightning states plus the filled part of the KV caches."""
        n = sum(s.numel() * s.element_size() for s in self.states if s is not None)
        for c in self.kv:
            if c is not None:
                n += 2 * c.k[:, :, : c.length].numel() * c.k.element_size()
        return n


class DecoderLayer(nn.Module):
    """One hybrid layer: attention (lightning or softmax) and the sparse MoE, with α/β residual scaling."""

    def __init__(self, config: MiniMaxConfig, layer_idx: int) -> None:
        super().__init__()
        c = config
        self.kind = c.layer_kinds[layer_idx]
        self.layer_idx = layer_idx
        self.postnorm = c.postnorm
        self.input_layernorm = RMSNorm(c.hidden_size, eps=c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, eps=c.rms_norm_eps)
        self.self_attn: LightningAttention | SoftmaxAttention
        if self.kind == "lightning":
            slope = minimax_slope_rate(c.num_attention_heads, layer_idx, c.num_hidden_layers,
                                       variant=c.lightning_slope_variant)
            self.self_attn = LightningAttention(c.hidden_size, c.num_attention_heads, c.head_dim, slope,
                                                rms_norm_eps=LIGHTNING_NORM_EPS)
            self.attn_alpha, self.attn_beta = c.layernorm_linear_attention_alpha, c.layernorm_linear_attention_beta
        else:
            self.self_attn = SoftmaxAttention(c.hidden_size, c.num_attention_heads, c.num_key_value_heads,
                                              c.head_dim, c.rotary_dim, c.rope_theta)
            self.attn_alpha, self.attn_beta = c.layernorm_full_attention_alpha, c.layernorm_full_attention_beta
        self.mlp_alpha, self.mlp_beta = c.layernorm_mlp_alpha, c.layernorm_mlp_beta
        self.block_sparse_moe = SparseMoE(c.hidden_size, c.intermediate_size, c.num_local_experts,
                                          c.num_experts_per_tok, jitter_noise=c.router_jitter_noise)
        self._slope_args = (c.num_attention_heads, layer_idx, c.num_hidden_layers, c.lightning_slope_variant)

    def reset_buffers(self) -> None:
        """Recompute the non-persistent buffers (after ``to_empty`` from the meta device)."""
        if isinstance(self.self_attn, LightningAttention):
            self.self_attn.slope_rate = minimax_slope_rate(*self._slope_args[:3], variant=self._slope_args[3]).to(
                self.self_attn.slope_rate.device)
        else:
            self.self_attn.rotary.reset_buffers()

    def _compose(self, h: torch.Tensor, attend: Callable[[torch.Tensor], torch.Tensor],
                 mlp: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The layer's residual form around ``attend`` and ``mlp`` (see the module docstring)."""
        hn = self.input_layernorm(h)
        h = (hn if self.postnorm else h) * self.attn_alpha + attend(hn) * self.attn_beta
        hn = self.post_attention_layernorm(h)
        return (hn if self.postnorm else h) * self.mlp_alpha + mlp(hn) * self.mlp_beta

    def forward(self, h: torch.Tensor, *, token_mask: torch.Tensor | None, position_ids: torch.Tensor,
                key_mask: torch.Tensor | None, cache: HybridCache | None) -> tuple[torch.Tensor, Routing]:
        """h (B, L, hidden); token_mask (B, L) real-token mask of these tokens or None (all real)."""

        def attend(x: torch.Tensor) -> torch.Tensor:
            if isinstance(self.self_attn, LightningAttention):
                state = cache.states[self.layer_idx] if cache is not None else None
                a, new_state = self.self_attn(x, attention_mask=token_mask, state=state)
                if cache is not None:
                    cache.states[self.layer_idx] = new_state
                return a
            kv = cache.kv[self.layer_idx] if cache is not None else None
            return self.self_attn(x, position_ids, key_mask=key_mask, cache=kv)

        routing: list[Routing] = []

        def mlp(x: torch.Tensor) -> torch.Tensor:
            m, r = self.block_sparse_moe(x, attention_mask=token_mask, return_stats=False)
            routing.append(r)
            return m

        return self._compose(h, attend, mlp), routing[0]

    def decode_step(self, h: torch.Tensor, *, position: torch.Tensor, valid: torch.Tensor, slot: int,
                    state: torch.Tensor | None = None,
                    kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """One token per sequence (inference): h (B, hidden) -> (B, hidden). A lightning layer updates ``state``
        in place, a softmax layer writes slot ``slot`` of ``kv`` (see :meth:`SoftmaxAttention.decode_step`)."""
        attn = self.self_attn
        if isinstance(attn, LightningAttention):
            if state is None:
                raise LumosError(f"decode_step of lightning layer {self.layer_idx} needs its state")

            def attend(x: torch.Tensor) -> torch.Tensor:
                return attn.decode_step(x, state)
        else:
            if kv is None:
                raise LumosError(f"decode_step of softmax layer {self.layer_idx} needs its kv cache")

            def attend(x: torch.Tensor) -> torch.Tensor:
                return attn.decode_step(x, position, valid, slot, *kv)
        return self._compose(h, attend, self.block_sparse_moe.decode_step)


class Backbone(nn.Module):
    """The decoder stack under the LM head (``HybridLM.model``): ``embed_tokens``, ``layers``, ``norm``."""

    def __init__(self, config: MiniMaxConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def decoder_layers(self) -> list[DecoderLayer]:
        """The layers, typed (``nn.ModuleList`` yields plain modules). Every one is kept: a layer wrapped by the
        user (activation checkpointing's ``CheckpointWrapper``) still runs, it is never skipped."""
        return cast("list[DecoderLayer]", list(self.layers))


class HybridLM(nn.Module):
    """MiniMax-M1 hybrid MoE causal LM.

    ``model(input_ids (B, L) long, attention_mask (B, L) 1 = real / 0 = LEFT padding or None, cache=None)
    -> logits (B, L, V)``; after each forward, ``model.aux_loss`` holds the MoE load-balancing loss
    (scalar, already × ``router_aux_loss_coef``). Submodule names follow the release checkpoints
    (``model.layers.{l}.self_attn``, ``block_sparse_moe``, ...; MoE experts stacked as (E, ...) tensors).

    Example:
        >>> model = HybridLM(MiniMaxConfig(num_hidden_layers=2))
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 259])
    """

    #: set by the sharded loader (:func:`lumos.models.checkpoint.sharded.load_sharded`): bytes held and read
    load_stats: dict[str, int]

    def __init__(self, config: MiniMaxConfig) -> None:
        super().__init__()
        if not isinstance(config, MiniMaxConfig):
            raise bad_param("config", "a MiniMaxConfig", type(config).__name__, owner="HybridLM", type_error=True)
        self.config = config
        self.model = Backbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.lm_head_fp32 = False
        self._routing: list[Routing] = []
        self.init_weights()

    @classmethod
    def empty(cls, config: MiniMaxConfig, *, dtype: torch.dtype, device: torch.device | str = "cpu",
              prepare: Callable[[HybridLM], object] | None = None, retie: bool = True) -> HybridLM:
        """A model with uninitialised storage, to be filled from a checkpoint: built on the meta device (no
        memory, no initialisation), cast to ``dtype``, ``prepare(model)`` while it holds no storage (e.g. shard it
        with FSDP2), given storage on ``device`` (``to_empty``), derived buffers recomputed (RoPE frequencies,
        lightning slopes) and, with ``retie`` and tied embeddings, ``lm_head.weight`` tied again (``to_empty``
        gives each parameter its own storage). Pass ``retie=False`` once FSDP2 owns the parameters."""
        with torch.device("meta"):
            model = cls(config)
        model = model.to(dtype)
        if prepare is not None:
            prepare(model)
        model.to_empty(device=device)
        model.reset_buffers()
        if retie and config.tie_word_embeddings:
            model.lm_head.weight = model.model.embed_tokens.weight
        return model

    # ------------------------------------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """Normal(0, initializer_range) for matrices and embeddings; ones for norms (no-op on meta)."""
        std = self.config.initializer_range
        for name, p in self.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                nn.init.ones_(p)
            else:
                nn.init.normal_(p, std=std)

    def reset_buffers(self) -> None:
        """Recompute derived buffers (RoPE frequencies, lightning slopes) after ``to_empty``."""
        for layer in self.model.decoder_layers():
            layer.reset_buffers()

    @property
    def aux_loss(self) -> torch.Tensor | None:
        """MoE load-balancing loss of the last forward (scalar, × ``router_aux_loss_coef``; pooled over layers as
        transformers does); None before the first forward. Computed on first access, so decoding pays nothing.
        One-token decode steps (:meth:`decode_step`) record no routing: after them it is the last prefill's."""
        stats = self.router_stats()
        if not stats:
            return None
        return self.config.router_aux_loss_coef * load_balancing_loss(stats, self.config.num_local_experts)

    def router_stats(self) -> list[RouterStats]:
        """Per-MoE-layer routing statistics of the last forward (empty before the first; see :attr:`aux_loss`)."""
        return [r.stats() for r in self._routing]

    def _apply(self, fn, recurse=True):
        # dtype casts must not round the derived float32 buffers (lightning slopes, RoPE frequencies)
        super()._apply(fn, recurse)
        self.reset_buffers()
        return self

    @property
    def is_sharded(self) -> bool:
        """Whether FSDP2 / expert parallelism sharded the layers (DTensor parameters). Their forward hooks gather the
        weights, and :meth:`decode_step` calls no layer's forward, so a sharded model decodes through forward."""
        return any(hasattr(p, "placements") for p in self.model.decoder_layers()[0].parameters())

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.embed_tokens.weight.device

    # ------------------------------------------------------------------------------------------ forward
    def new_cache(self, batch_size: int, capacity: int = 256) -> HybridCache:
        """An empty :class:`HybridCache` for ``batch_size`` sequences (KV caches preallocated to ``capacity``)."""
        c, dev = self.config, self.device
        kv: list[KVCache | None] = [
            KVCache(batch_size, c.num_key_value_heads, c.head_dim, capacity, self.dtype, dev) if k == "softmax" else None
            for k in c.layer_kinds
        ]
        state_dtype = torch.float64 if self.dtype == torch.float64 else torch.float32  # the op's compute dtype
        states: list[torch.Tensor | None] = [
            torch.zeros(batch_size, c.num_attention_heads, c.head_dim, c.head_dim, dtype=state_dtype, device=dev)
            if k == "lightning" else None for k in c.layer_kinds
        ]
        return HybridCache(states=states, kv=kv,
                           key_mask=torch.zeros(batch_size, 0, dtype=torch.bool, device=dev),
                           next_position=torch.zeros(batch_size, dtype=torch.long, device=dev))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                cache: HybridCache | None = None) -> torch.Tensor:
        """Logits (B, L, V) for ``input_ids`` (B, L); with ``cache`` the tokens continue the cached ones."""
        owner = "HybridLM"
        check_tensor(input_ids, "input_ids", ndim=2, dtypes=(torch.int64, torch.int32), owner=owner)
        b, n = input_ids.shape
        weight = self.model.embed_tokens.weight
        if weight.is_meta:
            raise LumosError("This HybridLM lives on the meta device (no weights); load weights with "
                             "HybridLM.from_pretrained or call model.to_empty(device=...) and initialise it first.")
        if input_ids.is_meta:
            raise bad_param("input_ids", "token ids with values (on the model's device)", "a meta-device tensor "
                            "(shapes only, no values)", owner=owner, fix=f"Pass real ids on {weight.device}.")
        if input_ids.device != weight.device:
            raise bad_param("input_ids", f"a tensor on the model's device ({weight.device})", f"a tensor on "
                            f"{input_ids.device}", owner=owner, fix="Move it with .to(model.device).")
        if attention_mask is not None:
            check_tensor(attention_mask, "attention_mask", shape=(b, n), owner=owner)
            token_mask: torch.Tensor | None = attention_mask.to(torch.bool)
            if bool(token_mask.all()):
                token_mask = None
        else:
            token_mask = None
        if int(input_ids.min()) < 0 or int(input_ids.max()) >= self.config.vocab_size:
            raise bad_param("input_ids", f"token ids in [0, {self.config.vocab_size})",
                            f"ids in [{int(input_ids.min())}, {int(input_ids.max())}]", owner=owner)
        real = token_mask if token_mask is not None else torch.ones(b, n, dtype=torch.bool, device=input_ids.device)
        start = cache.next_position[:, None] if cache is not None else 0
        if cache is not None and cache.key_mask.shape[0] != b:
            raise bad_param("cache", f"a cache for batch size {b}", f"batch size {cache.key_mask.shape[0]}",
                            owner=owner)
        if (n == 1 and cache is not None and token_mask is None and not self.training and not torch.is_grad_enabled()
                and not self.is_sharded):
            return self._cached_step(input_ids[:, 0], cache)[:, None]
        position_ids = (start + torch.cumsum(real.long(), 1) - 1).clamp_min(0)
        if cache is not None:
            cache.key_mask = torch.cat((cache.key_mask, real), dim=1)
            cache.next_position = cache.next_position + real.sum(1)
            key_mask: torch.Tensor | None = cache.key_mask
        else:
            key_mask = token_mask
        h = self.model.embed_tokens(input_ids)
        stats = []
        for layer in self.model.decoder_layers():
            h, s = layer(h, token_mask=token_mask, position_ids=position_ids, key_mask=key_mask, cache=cache)
            stats.append(s)
        h = self.model.norm(h)
        self._routing = stats
        if self.lm_head_fp32:
            return F.linear(h.float(), self.lm_head.weight.float())
        return self.lm_head(h)

    def decode_step(self, tok: torch.Tensor, position: torch.Tensor, valid: torch.Tensor, slot: int,
                    states: list[torch.Tensor], kv: list[tuple[torch.Tensor, torch.Tensor]],
                    lm_head_fp32: bool | None = None) -> torch.Tensor:
        """One token per sequence over static buffers (inference); updates ``states`` and the KV buffers in place.

        The eager ``model(tok (B, 1), cache=cache)`` and the compiled step of :mod:`lumos.models.fast_decode` both
        run this; it is a pure tensor function of its arguments and the weights (``torch.compile`` keeps batch
        size, capacity and ``slot`` symbolic).

        Args:
            tok: (B,) long new tokens. position: (B,) long, their RoPE positions.
            valid: (B, ≥ slot + 1) bool, key slots the new tokens attend to (their own slot included).
            slot: the KV slot the new tokens are written to (= tokens cached so far).
            states: per lightning layer (in order) its (B, H, D, D) state. kv: per softmax layer (in order) its
                (k, v) buffers (B, H_kv, capacity, d). See :meth:`HybridCache.step_buffers`.
            lm_head_fp32: default ``self.lm_head_fp32``.

        Returns:
            logits (B, V) (float32 with the fp32 head).
        """
        h = F.embedding(tok, self.model.embed_tokens.weight)
        li = si = 0
        for layer in self.model.decoder_layers():
            if layer.kind == "lightning":
                h = layer.decode_step(h, position=position, valid=valid, slot=slot, state=states[li])
                li += 1
            else:
                h = layer.decode_step(h, position=position, valid=valid, slot=slot, kv=kv[si])
                si += 1
        h = self.model.norm(h)
        if self.lm_head_fp32 if lm_head_fp32 is None else lm_head_fp32:
            return decode_linear(h.float(), self.lm_head.weight.float())
        return decode_linear(h, self.lm_head.weight)

    def _cached_step(self, tok: torch.Tensor, cache: HybridCache) -> torch.Tensor:
        """:meth:`decode_step` on ``cache`` (its KV buffers grow as needed); logits (B, V)."""
        t = cache.length
        cache.reserve(t + 1)
        key_mask = torch.cat((cache.key_mask, cache.key_mask.new_ones(tok.shape[0], 1)), 1)
        states, kv = cache.step_buffers()
        logits = self.decode_step(tok, cache.next_position, key_mask, t, states, kv)
        cache.advance(key_mask)
        return logits

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def tiny_hybrid(hidden_size: int = 64, num_layers: int = 2, seed: int = 0, **overrides: Any) -> HybridLM:
    """A small MiniMax hybrid LM for the byte tokenizer (weights seeded with ``seed``): lightning layers with a
    softmax layer last, a tiny MoE (2 experts, top-1); ``overrides`` are further :class:`MiniMaxConfig` fields."""
    heads = max(hidden_size // 16, 1)
    kw: dict[str, Any] = dict(
        hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=heads, head_dim=16,
        num_key_value_heads=max(heads // 2, 1), intermediate_size=2 * hidden_size, num_local_experts=2,
        num_experts_per_tok=1, attn_type_list=[0] * (num_layers - 1) + [1], rotary_dim=8)
    kw.update(overrides)
    torch.manual_seed(seed)
    return HybridLM(MiniMaxConfig(**kw))

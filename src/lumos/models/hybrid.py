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
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.errors import bad_param
from lumos.core.validation import check_tensor
from lumos.layers.lightning_attention import LightningAttention, minimax_slope_rate
from lumos.layers.moe import Routing, SparseMoE, load_balancing_loss
from lumos.layers.norm import RMSNorm
from lumos.layers.softmax_attention import KVCache, SoftmaxAttention
from lumos.models.config import MiniMaxConfig

if TYPE_CHECKING:
    from lumos.models.generation import GenerationOutput

__all__ = ["HybridLM", "DecoderLayer", "HybridCache"]

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

    def forward(self, h: torch.Tensor, *, token_mask: torch.Tensor | None, position_ids: torch.Tensor,
                key_mask: torch.Tensor | None, cache: HybridCache | None) -> tuple[torch.Tensor, Routing]:
        """h (B, L, hidden); token_mask (B, L) real-token mask of these tokens or None (all real)."""
        hn = self.input_layernorm(h)
        if isinstance(self.self_attn, LightningAttention):
            state = cache.states[self.layer_idx] if cache is not None else None
            a, new_state = self.self_attn(hn, attention_mask=token_mask, state=state)
            if cache is not None:
                cache.states[self.layer_idx] = new_state
        else:
            kv = cache.kv[self.layer_idx] if cache is not None else None
            a = self.self_attn(hn, position_ids, key_mask=key_mask, cache=kv)
        h = (hn if self.postnorm else h) * self.attn_alpha + a * self.attn_beta
        hn = self.post_attention_layernorm(h)
        m, stats = self.block_sparse_moe(hn, attention_mask=token_mask, return_stats=False)
        h = (hn if self.postnorm else h) * self.mlp_alpha + m * self.mlp_beta
        return h, stats


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

    def __init__(self, config: MiniMaxConfig) -> None:
        super().__init__()
        if not isinstance(config, MiniMaxConfig):
            raise bad_param("config", "a MiniMaxConfig", type(config).__name__, owner="HybridLM", type_error=True)
        self.config = config
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.model.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.model.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.lm_head_fp32 = False
        self._routing: list[Routing] = []
        self.init_weights()

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
        for layer in self.model.layers:
            layer.reset_buffers()

    @property
    def aux_loss(self) -> torch.Tensor | None:
        """MoE load-balancing loss of the last forward (scalar, × ``router_aux_loss_coef``; pooled over layers as
        transformers does); None before the first forward. Computed on first access, so decoding pays nothing."""
        if not self._routing:
            return None
        stats = [r.stats() for r in self._routing]
        return self.config.router_aux_loss_coef * load_balancing_loss(stats, self.config.num_local_experts)

    def _apply(self, fn, recurse=True):  # type: ignore[override]
        # dtype casts must not round the derived float32 buffers (lightning slopes, RoPE frequencies)
        super()._apply(fn, recurse)
        self.reset_buffers()
        return self

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
        return HybridCache(states=[None] * c.num_hidden_layers, kv=kv,
                           key_mask=torch.zeros(batch_size, 0, dtype=torch.bool, device=dev),
                           next_position=torch.zeros(batch_size, dtype=torch.long, device=dev))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                cache: HybridCache | None = None) -> torch.Tensor:
        """Logits (B, L, V) for ``input_ids`` (B, L); with ``cache`` the tokens continue the cached ones."""
        owner = "HybridLM"
        check_tensor(input_ids, "input_ids", ndim=2, dtypes=(torch.int64, torch.int32), owner=owner)
        b, n = input_ids.shape
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
        position_ids = (start + torch.cumsum(real.long(), 1) - 1).clamp_min(0)
        if cache is not None:
            if cache.key_mask.shape[0] != b:
                raise bad_param("cache", f"a cache for batch size {b}", f"batch size {cache.key_mask.shape[0]}",
                                owner=owner)
            cache.key_mask = torch.cat((cache.key_mask, real), dim=1)
            cache.next_position = cache.next_position + real.sum(1)
            key_mask: torch.Tensor | None = cache.key_mask
        else:
            key_mask = token_mask
        h = self.model.embed_tokens(input_ids)
        stats = []
        for layer in self.model.layers:
            h, s = layer(h, token_mask=token_mask, position_ids=position_ids, key_mask=key_mask, cache=cache)
            stats.append(s)
        h = self.model.norm(h)
        self._routing = stats
        if self.lm_head_fp32:
            return F.linear(h.float(), self.lm_head.weight.float())
        return self.lm_head(h)

    # ------------------------------------------------------------------------------------- generation
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
                 ) -> GenerationOutput:
        """Sample continuations; see :func:`lumos.models.generation.generate` for the arguments."""
        from lumos.models.generation import generate

        return generate(self, input_ids, attention_mask=attention_mask, **kwargs)

    # ------------------------------------------------------------------------------------ checkpoints
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], dtype: torch.dtype | None = None,
                        device: str | torch.device = "cpu", format: str | None = None, device_mesh: Any = None,
                        expert_parallel: bool = False) -> HybridLM:
        """Load a checkpoint directory in either format (release ``minimax_m1`` or transformers ``minimax``;
        detected from config.json, or required to be ``format``). ``dtype`` default: the checkpoint's.

        With ``device_mesh`` (:func:`lumos.models.parallel.make_mesh`) the model is sharded with FSDP2 (and
        ``expert_parallel``) and each rank reads only its own slices (:mod:`lumos.models.sharded_loading`)."""
        if device_mesh is not None:
            from lumos.models.sharded_loading import load_sharded

            return load_sharded(Path(path), device_mesh, dtype=dtype, expert_parallel=expert_parallel,
                                format=format, device=device)
        from lumos.models.checkpoint import load_pretrained

        return load_pretrained(Path(path), dtype=dtype, device=device, format=format)

    def save_pretrained(self, path: str | os.PathLike[str], format: str = "minimax_m1",
                        max_shard_size: int = 2 * 1024**3, dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` and sharded safetensors + ``model.safetensors.index.json`` in ``format``."""
        from lumos.models.checkpoint import save_pretrained

        return save_pretrained(self, Path(path), format=format, max_shard_size=max_shard_size, dtype=dtype)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

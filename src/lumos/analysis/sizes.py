"""Parameter counts of a MiniMax hybrid model, by part, from its config alone (no weights built).

One place for the arithmetic that :mod:`lumos.analysis.flops` (FLOPs per token) and :mod:`lumos.analysis.plan`
(memory per GPU) both need. The counts follow the modules of :class:`~lumos.models.HybridLM` (reference §1.1,
§2.3–§2.5); ``tests/models/test_sizes.py`` checks them against a built model, parameter by parameter group.

MiniMax-M1 (``preset_config("minimax-m1")``): 456,089,655,296 parameters, of which 45,944,920,064 are active per
token outside the embedding and the LM head (model card: 456B / 45.9B). The release index's ``total_size``
(912,210,767,872 B) equals these counts with the 80 router gates stored in fp32 and everything else in bf16
(derived from the sizes, verify against the safetensors headers).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lumos.core.errors import LumosError
from lumos.models.minimax.config import MiniMaxConfig

__all__ = ["ParamCounts", "count_params", "PRESETS", "preset_config", "resolve_config", "all_softmax"]


@dataclass(frozen=True)
class ParamCounts:
    """Parameters of one model, by part (element counts, not bytes).

    Per-layer fields are per layer of that kind; ``layers`` lists each layer's total in order.
    """

    embed: int               # token embedding (vocab × hidden)
    lm_head: int             # 0 when tied to the embedding
    final_norm: int
    lightning_attn: int      # qkv_proj, output_gate, out_proj, the H·d RMSNorm: per lightning layer
    lightning_norm: int      # the H·d RMSNorm alone (part of lightning_attn)
    softmax_attn: int        # q/k/v/o projections: per softmax layer
    layer_norms: int         # input and post-attention RMSNorm: per layer
    router: int              # per layer
    expert: int              # ONE expert (w1, w3, w2): per expert per layer
    experts_per_layer: int
    top_k: int
    n_lightning: int
    n_softmax: int
    layers: tuple[int, ...]  # every layer's parameters, in order

    @property
    def n_layers(self) -> int:
        return self.n_lightning + self.n_softmax

    @property
    def experts(self) -> int:
        """All expert weights of the model."""
        return self.n_layers * self.experts_per_layer * self.expert

    @property
    def total(self) -> int:
        return self.embed + self.lm_head + self.final_norm + sum(self.layers)

    @property
    def dense(self) -> int:
        """Everything but the expert weights (attention, norms, routers, embedding, head)."""
        return self.total - self.experts

    @property
    def active(self) -> int:
        """Parameters a token uses, without the embedding and the LM head (the model card's convention)."""
        return self.total - self.embed - self.lm_head - self.n_layers * (self.experts_per_layer - self.top_k) * self.expert

    @property
    def max_layer(self) -> int:
        """The largest decoder layer (what FSDP gathers at once)."""
        return max(self.layers)

    @property
    def norms_and_routers(self) -> int:
        """Small parameters that tensor parallelism keeps whole on every rank."""
        return self.final_norm + self.n_layers * (self.layer_norms + self.router) + self.n_lightning * self.lightning_norm


def count_params(config: MiniMaxConfig) -> ParamCounts:
    """Parameter counts of ``config`` by part (see :class:`ParamCounts`)."""
    h, hd = config.hidden_size, config.num_attention_heads * config.head_dim
    kvd = config.num_key_value_heads * config.head_dim
    lightning = 5 * hd * h + hd                    # qkv (3·H·d × h), output_gate (H·d × h), out_proj (h × H·d), norm
    softmax = h * (hd + 2 * kvd) + hd * h          # q, k, v, o
    expert = 3 * h * config.intermediate_size      # w1, w3 (I × h), w2 (h × I)
    e = config.num_local_experts
    router, norms = h * e, 2 * h
    moe = e * expert + router
    layers = tuple((softmax if t == 1 else lightning) + moe + norms for t in config.attn_type_list)
    n_softmax = sum(config.attn_type_list)
    vocab_h = config.vocab_size * h
    return ParamCounts(embed=vocab_h, lm_head=0 if config.tie_word_embeddings else vocab_h, final_norm=h,
                       lightning_attn=lightning, lightning_norm=hd, softmax_attn=softmax, layer_norms=norms, router=router,
                       expert=expert, experts_per_layer=e, top_k=config.num_experts_per_tok,
                       n_lightning=len(layers) - n_softmax, n_softmax=n_softmax, layers=layers)


#: Release configs by name (``config.json`` of MiniMax-AI/MiniMax-M1, reference §2.1; M1-40k and M1-80k share it).
PRESETS: dict[str, dict[str, Any]] = {
    "minimax-m1": dict(
        vocab_size=200064, hidden_size=6144, num_hidden_layers=80, num_attention_heads=64, head_dim=128,
        num_key_value_heads=8, intermediate_size=9216, num_local_experts=32, num_experts_per_tok=2,
        attn_type_list=([0] * 7 + [1]) * 10, rotary_dim=64, rope_theta=10_000_000.0, rms_norm_eps=1e-5,
        postnorm=True, tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=None,
        torch_dtype="bfloat16"),
}


def preset_config(name: str) -> MiniMaxConfig:
    """The :class:`MiniMaxConfig` of a released model by name (``"minimax-m1"``)."""
    if name not in PRESETS:
        raise LumosError(f"Unknown model name {name!r}; known names: {', '.join(PRESETS)}, or give the path of a "
                         "config.json (or of a checkpoint directory holding one).")
    return MiniMaxConfig(**PRESETS[name])


def resolve_config(spec: str) -> tuple[str, MiniMaxConfig]:
    """``(name, config)`` for a preset name or the path of a ``config.json`` / checkpoint directory."""
    from pathlib import Path

    if spec in PRESETS:
        return spec, preset_config(spec)
    p = Path(spec)
    if not p.exists():
        raise LumosError(f"--model {spec!r} is neither a known model name ({', '.join(PRESETS)}) nor an existing "
                         "config.json or checkpoint directory; check the spelling or the path.")
    if p.is_dir() and not (p / "config.json").is_file():
        raise LumosError(f"{p} is a directory without a config.json; give a checkpoint directory or a config file.")
    return p.stem if p.is_file() else p.name, MiniMaxConfig.from_json(p)


def all_softmax(config: MiniMaxConfig) -> MiniMaxConfig:
    """The same model with softmax attention (its GQA shape) in every layer: the M1 paper's comparison."""
    return dataclasses.replace(config, attn_type_list=[1] * config.num_hidden_layers)

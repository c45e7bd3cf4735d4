"""Weight layouts: lumos parameters ↔ the release (``minimax_m1``) and transformers (``minimax``) checkpoint keys.

lumos keeps the release module names and stacks each layer's experts: ``block_sparse_moe.w1``/``w3``
(E, I, H) and ``w2`` (E, H, I). On disk (reference §2.5):

* release: ``model.layers.{l}.block_sparse_moe.gate.weight`` and ``...experts.{e}.w1/w2/w3.weight``;
* transformers (what ``MiniMaxForCausalLM.state_dict()`` names): ``model.layers.{l}.mlp.gate.weight``,
  ``mlp.experts.gate_up_proj`` (E, 2I, H) = [w1; w3] and ``mlp.experts.down_proj`` (E, H, I) = w2. Its
  ``save_pretrained`` writes the release expert names instead, plus the derived lightning buffers
  ``self_attn.{slope_rate,query_decay,key_decay,diagonal_decay}``; both are read.

Lightning (``qkv_proj`` per-head interleaved, ``output_gate``, ``norm``, ``out_proj``) and softmax
(``q/k/v/o_proj``) weights have the same names in both. With partial RoPE the transformers format uses
"proportional" RoPE, whose rotated pairs are (i, i + d/2) instead of (i, i + r/2); the q/k rows of each head are
permuted between the two (:func:`rope_permutation`), which leaves q·k — and so the model — unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from lumos.layers.lightning_attention import LightningAttention
from lumos.models.minimax.config import MiniMaxConfig

if TYPE_CHECKING:  # modeling imports the checkpoint code that imports this module
    from lumos.models.minimax.modeling import HybridLM

__all__ = ["Placement", "SourceSpec", "source_spec", "export_tensors", "rope_permutation", "detect_moe_style",
           "transformers_decay_buffers"]

_TF_BUFFERS = ("slope_rate", "query_decay", "key_decay", "diagonal_decay")


@dataclass(frozen=True)
class Placement:
    """Copy ``transform(source)`` into ``param[index]`` (``index`` None = whole tensor).

    ``row_block``: the transform mixes rows only within blocks of this many rows of dim 0 (a sharded load reads
    whole blocks around its slice); 1 = the transform leaves dim 0 alone."""

    param: str
    index: int | None = None
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    row_block: int = 1


@dataclass(frozen=True)
class SourceSpec:
    """One checkpoint key: expected shape, where it goes, and whether it may be absent."""

    shape: tuple[int, ...] | None
    placements: tuple[Placement, ...]
    optional: bool = False
    check_slope_layer: int | None = None  # a transformers slope_rate buffer, verified against the config


def rope_permutation(head_dim: int, rotary_dim: int) -> torch.Tensor:
    """Index p with lumos_dims = transformers_dims[p] for one head (identity when rotary_dim == head_dim)."""
    a, half = rotary_dim // 2, head_dim // 2
    return torch.cat([torch.arange(0, a), torch.arange(half, half + a), torch.arange(a, half),
                      torch.arange(half + a, head_dim)])


def _permute_rows(perm: torch.Tensor, head_dim: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def f(w: torch.Tensor) -> torch.Tensor:
        heads = w.shape[0] // head_dim
        return w.view(heads, head_dim, -1)[:, perm.to(w.device)].reshape(w.shape)

    return f


def detect_moe_style(keys: Iterable[str]) -> str:
    """``"fused"`` (transformers state-dict names) when any ``mlp.experts.gate_up_proj`` key exists, else
    ``"experts"`` (release per-expert names)."""
    return "fused" if any(k.endswith("mlp.experts.gate_up_proj") for k in keys) else "experts"


def _needs_perm(config: MiniMaxConfig, fmt: str) -> bool:
    return fmt == "transformers" and config.rotary_dim != config.head_dim


def source_spec(config: MiniMaxConfig, fmt: str, moe_style: str) -> dict[str, SourceSpec]:
    """Every checkpoint key of ``fmt`` ("minimax_m1" / "transformers") and ``moe_style`` ("experts"/"fused")."""
    c = config
    hd, h, hkv, e_, i_ = c.head_dim, c.hidden_size, c.num_key_value_heads, c.num_local_experts, c.intermediate_size
    spec: dict[str, SourceSpec] = {
        "model.embed_tokens.weight": SourceSpec((c.vocab_size, h), (Placement("model.embed_tokens.weight"),)),
        "model.norm.weight": SourceSpec((h,), (Placement("model.norm.weight"),)),
        "lm_head.weight": SourceSpec((c.vocab_size, h), () if c.tie_word_embeddings else (Placement("lm_head.weight"),),
                                     optional=c.tie_word_embeddings),
    }
    perm = _permute_rows(rope_permutation(hd, c.rotary_dim), hd) if _needs_perm(c, fmt) else None
    for l, kind in enumerate(c.layer_kinds):
        p = f"model.layers.{l}."
        for n in ("input_layernorm", "post_attention_layernorm"):
            spec[p + n + ".weight"] = SourceSpec((h,), (Placement(p + n + ".weight"),))
        a = p + "self_attn."
        if kind == "lightning":
            inner = c.num_attention_heads * hd
            shapes = {"qkv_proj": (3 * inner, h), "output_gate": (inner, h), "norm": (inner,), "out_proj": (h, inner)}
            for n, shape in shapes.items():
                spec[a + n + ".weight"] = SourceSpec(shape, (Placement(a + n + ".weight"),))
            if fmt == "transformers":  # transformers' save_pretrained writes its derived decay buffers
                for n in _TF_BUFFERS:
                    spec[a + n] = SourceSpec(None, (), optional=True, check_slope_layer=l if n == "slope_rate" else None)
        else:
            q_rows, kv_rows = c.num_attention_heads * hd, hkv * hd
            spec[a + "q_proj.weight"] = SourceSpec((q_rows, h), (Placement(a + "q_proj.weight", None, perm, hd),))
            spec[a + "k_proj.weight"] = SourceSpec((kv_rows, h), (Placement(a + "k_proj.weight", None, perm, hd),))
            spec[a + "v_proj.weight"] = SourceSpec((kv_rows, h), (Placement(a + "v_proj.weight"),))
            spec[a + "o_proj.weight"] = SourceSpec((h, q_rows), (Placement(a + "o_proj.weight"),))
        m = p + "block_sparse_moe."
        if moe_style == "fused":
            spec[p + "mlp.gate.weight"] = SourceSpec((e_, h), (Placement(m + "gate.weight"),))
            spec[p + "mlp.experts.gate_up_proj"] = SourceSpec((e_, 2 * i_, h), (
                Placement(m + "w1", None, lambda t, i_=i_: t[:, :i_]),
                Placement(m + "w3", None, lambda t, i_=i_: t[:, i_:])))
            spec[p + "mlp.experts.down_proj"] = SourceSpec((e_, h, i_), (Placement(m + "w2"),))
        else:
            spec[m + "gate.weight"] = SourceSpec((e_, h), (Placement(m + "gate.weight"),))
            for e in range(e_):
                for w, shape in (("w1", (i_, h)), ("w2", (h, i_)), ("w3", (i_, h))):
                    spec[f"{m}experts.{e}.{w}.weight"] = SourceSpec(shape, (Placement(m + w, e),))
    return spec


def transformers_decay_buffers(slope: torch.Tensor, block_size: int) -> dict[str, torch.Tensor]:
    """transformers' ``MiniMaxLightningAttention`` buffers for slopes (H,): slope_rate (H, 1, 1), query_decay and
    key_decay (H, block, 1), diagonal_decay (1, H, block, block) — its ``decay_factors`` formulas, in float32."""
    s = slope.float()[:, None, None]
    r = torch.arange(block_size, dtype=torch.float32) + 1
    diag = s * (r[:, None] - r[None, :])[None, None]
    return {"slope_rate": s, "query_decay": torch.exp(-s * r[:, None]),
            "key_decay": torch.exp(-s * (block_size - r[:, None])),
            "diagonal_decay": torch.exp(torch.where(diag >= 0, -diag, float("-inf")))}


def export_tensors(model: HybridLM, fmt: str, dtype: torch.dtype | None = None
                   ) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (checkpoint key, tensor) for ``fmt``: "minimax_m1" (release names, per-expert) or "transformers"
    (fused experts, q/k rows permuted for proportional RoPE). Tensors are detached, on their device."""
    c: MiniMaxConfig = model.config
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    if c.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    inv = None
    if _needs_perm(c, fmt):
        inv = _permute_rows(torch.argsort(rope_permutation(c.head_dim, c.rotary_dim)), c.head_dim)
    cast = (lambda t: t.to(dtype)) if dtype is not None else (lambda t: t)
    for key, t in sd.items():
        if ".block_sparse_moe." in key:
            continue
        if inv is not None and (key.endswith("self_attn.q_proj.weight") or key.endswith("self_attn.k_proj.weight")):
            t = inv(t)
        yield key, cast(t)
    if fmt == "transformers":  # the decay buffers transformers keeps in its state dict: it then uses our slopes
        for l, layer in enumerate(model.model.decoder_layers()):
            if isinstance(layer.self_attn, LightningAttention):
                slope = layer.self_attn.slope_rate.detach().float().cpu()
                for name, t in transformers_decay_buffers(slope, c.block_size).items():
                    yield f"model.layers.{l}.self_attn.{name}", t
    for l in range(c.num_hidden_layers):
        m = f"model.layers.{l}.block_sparse_moe."
        w1, w2, w3 = sd[m + "w1"], sd[m + "w2"], sd[m + "w3"]
        if fmt == "transformers":
            p = f"model.layers.{l}.mlp."
            yield p + "gate.weight", cast(sd[m + "gate.weight"])
            yield p + "experts.gate_up_proj", cast(torch.cat((w1, w3), dim=1))
            yield p + "experts.down_proj", cast(w2)
        else:
            yield m + "gate.weight", cast(sd[m + "gate.weight"])
            for e in range(c.num_local_experts):
                for name, w in (("w1", w1), ("w2", w2), ("w3", w3)):
                    yield f"{m}experts.{e}.{name}.weight", cast(w[e])

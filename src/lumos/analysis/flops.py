"""Generation FLOPs of MiniMax-M1 (hybrid lightning/softmax) versus DeepSeek-R1 (MLA, dense softmax).

What is counted, per generated token whose context holds ``t`` tokens (itself included):

- every matrix multiplication with weights, 2 FLOPs per multiply-add: attention projections, active MoE
  experts (top-k routed + shared), the router, dense MLPs, the LM head (the embedding lookup is free);
- softmax attention: QKᵀ and AV over the ``t`` cached keys: 2·H·(d_qk + d_v)·t per layer — this is the term
  that grows with context;
- lightning attention (decode recurrence S ← λS + kᵀv, o = qS): 5·H·d² per layer, independent of ``t``
  (decay, outer product and add: 3·H·d²; readout 2·H·d²);
- not counted: norms, activations, softmax exponentials, RoPE, sampling (elementwise, O(hidden) per token).

DeepSeek-R1's multi-head latent attention (MLA) has three counts here (``mla=``), per layer per cached token:

- ``"naive"`` (lumos's default): attention per head over the decompressed q/k of 192 dims (128 no-RoPE + 64
  RoPE) and v of 128 dims: 2·128·(192 + 128) = 81,920 FLOPs; × 61 layers = 4.997 MFLOPs. The K/V
  up-projection is counted once per token (the usual "MHA-equivalent" count).
- ``"padded"``: the same with v counted at the q/k head dimension, 2·128·(192 + 192) = 98,304; × 61 =
  5.997 MFLOPs. This is PaLM's 4·L·H·Q·T attention term (Chowdhery et al. 2022, App. B) with one head size
  Q = 192, and what a FlashAttention-based MLA computes (it pads v to 192 dims). It is the count that reproduces
  the paper's Figure 1 (right): see :data:`FIGURE1_RATIOS` and :func:`fit_per_ctx`.
- ``"absorbed"``: the up-projections folded into the query/output so that attention runs in the 512-dim
  latent space (+64 RoPE dims): 2·128·(512 + 64 + 512) = 278,528; × 61 = 16.99 MFLOPs — fewer weights per
  token, 3.4× the naive attention FLOPs; what inference engines run for long contexts.

Two readings of "FLOPs at generation length n": ``per_token`` = the FLOPs of generating token n (the
marginal cost), ``cumulative`` = all FLOPs to generate tokens 1..n (after ``prompt`` prompt tokens, whose
prefill is not counted). The paper's Figure 1 (right) is cumulative.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lumos.analysis.sizes import count_params, preset_config
from lumos.core.errors import bad_param

__all__ = ["ModelFlops", "MLA_COUNTS", "FIGURE1_RATIOS", "minimax_m1", "deepseek_r1", "from_minimax_config",
           "compare_table", "fit_per_ctx"]

#: The ways of counting DeepSeek-R1's attention FLOPs (see the module docstring).
MLA_COUNTS = ("naive", "padded", "absorbed")

#: M1/R1 cumulative generation-FLOPs ratios at 64K, 100K and 128K generated tokens, read off the vector drawing
#: of Figure 1 (right) of the MiniMax-M1 report (arXiv 2506.13585), as stated in issue #16. 64K and 128K are taken
#: as 65,536 and 131,072, 100K as 100,000 (the paper's text); with 102,400 the 100K point implies a 2 % lower R1
#: attention cost than the other two (see :func:`fit_per_ctx`).
FIGURE1_RATIOS: dict[int, float] = {65536: 0.385, 100000: 0.292, 131072: 0.244}


@dataclass
class ModelFlops:
    """Per-token FLOPs of a decoder split into a constant part and a part linear in the context length.

    ``const`` = FLOPs per generated token independent of context; ``per_ctx`` = FLOPs per generated token per
    cached token (summed over softmax layers). ``parts`` documents the breakdown (FLOPs per token).
    """

    name: str
    const: float
    per_ctx: float
    active_params: float
    parts: dict[str, float] = field(default_factory=dict)

    def per_token(self, t: float) -> float:
        """FLOPs of a token generated with ``t`` tokens of context (itself included)."""
        return self.const + self.per_ctx * t

    def cumulative(self, n: float, prompt: float = 0.0) -> float:
        """FLOPs of generating ``n`` tokens after ``prompt`` tokens: Σ_{t=prompt+1}^{prompt+n} per_token(t)."""
        return self.const * n + self.per_ctx * (n * prompt + n * (n + 1) / 2)


def minimax_m1() -> ModelFlops:
    """MiniMax-M1 (config.json of MiniMax-AI/MiniMax-M1, reference §2.1; :data:`lumos.analysis.sizes.PRESETS`)."""
    return from_minimax_config(preset_config("minimax-m1"), name="MiniMax-M1")


def from_minimax_config(config: Any, name: str = "config") -> ModelFlops:
    """FLOPs model of a lumos :class:`~lumos.models.MiniMaxConfig` (any size, any layer pattern).

    Weight FLOPs come from :func:`lumos.analysis.sizes.count_params` (2 FLOPs per multiply-add, top-k experts).
    """
    c = count_params(config)
    heads, d = config.num_attention_heads, config.head_dim
    p_lightning = c.lightning_attn - c.lightning_norm     # qkv (3), output gate, out_proj
    p_moe = c.top_k * c.expert + c.router
    p_head = config.vocab_size * config.hidden_size       # the head matmul runs even when tied to the embedding
    active = c.n_lightning * p_lightning + c.n_softmax * c.softmax_attn + c.n_layers * p_moe + p_head
    parts = {
        "lightning projections": 2.0 * c.n_lightning * p_lightning,
        "lightning recurrence": 5.0 * c.n_lightning * heads * d * d,
        "softmax projections": 2.0 * c.n_softmax * c.softmax_attn,
        "MoE (routed + router)": 2.0 * c.n_layers * p_moe,
        "LM head": 2.0 * p_head,
    }
    per_ctx = c.n_softmax * 2.0 * heads * (d + d)         # QKᵀ and AV, per cached token
    return ModelFlops(name, sum(parts.values()), per_ctx, float(active), parts)


def deepseek_r1(mla: str = "naive", **overrides: Any) -> ModelFlops:
    """DeepSeek-R1 = DeepSeek-V3 architecture (config.json of deepseek-ai/DeepSeek-R1, reference §3)."""
    if mla not in MLA_COUNTS:
        raise bad_param("mla", "one of " + ", ".join(repr(m) for m in MLA_COUNTS), mla, owner="deepseek_r1")
    c = dict(hidden=7168, layers=61, heads=128, q_lora=1536, kv_lora=512, nope=128, rope=64, v_dim=128,
             dense_layers=3, dense_inter=18432, experts=256, top_k=8, shared=1, moe_inter=2048, vocab=129280)
    c.update(overrides)
    h, H = c["hidden"], c["heads"]
    qk = c["nope"] + c["rope"]
    q_proj = h * c["q_lora"] + c["q_lora"] * H * qk
    kv_a = h * (c["kv_lora"] + c["rope"])
    kv_b = c["kv_lora"] * H * (c["nope"] + c["v_dim"])
    o_proj = H * c["v_dim"] * h
    attn_params = q_proj + kv_a + kv_b + o_proj
    if mla == "naive":
        per_ctx_layer = 2.0 * H * (qk + c["v_dim"])
    elif mla == "padded":  # v counted at the q/k head dim (PaLM's 4·H·Q per layer and context token, Q = 192)
        per_ctx_layer = 2.0 * H * (qk + qk)
    else:  # attention in latent space: scores over kv_lora + rope dims, values over kv_lora dims
        per_ctx_layer = 2.0 * H * (c["kv_lora"] + c["rope"] + c["kv_lora"])
    moe_layers = c["layers"] - c["dense_layers"]
    p_dense = 3 * h * c["dense_inter"]
    p_moe = (c["top_k"] + c["shared"]) * 3 * h * c["moe_inter"] + h * c["experts"]
    p_head = h * c["vocab"]
    active = c["layers"] * attn_params + c["dense_layers"] * p_dense + moe_layers * p_moe + p_head
    parts = {
        "MLA projections": 2.0 * c["layers"] * attn_params,
        "dense MLP (first layers)": 2.0 * c["dense_layers"] * p_dense,
        "MoE (routed + shared + router)": 2.0 * moe_layers * p_moe,
        "LM head": 2.0 * p_head,
    }
    return ModelFlops(f"DeepSeek-R1 (MLA {mla})", sum(parts.values()), c["layers"] * per_ctx_layer, float(active), parts)


def compare_table(lengths: list[int], prompt: int = 0, mla: str = "naive") -> list[dict[str, Any]]:
    """MiniMax-M1 vs DeepSeek-R1 per length: TFLOPs of both readings and the M1/R1 ratios."""
    m1, r1 = minimax_m1(), deepseek_r1(mla)
    rows = []
    for n in lengths:
        rows.append({
            "generated tokens": n,
            "M1 per-token GFLOPs": m1.per_token(prompt + n) / 1e9,
            "R1 per-token GFLOPs": r1.per_token(prompt + n) / 1e9,
            "per-token ratio M1/R1": m1.per_token(prompt + n) / r1.per_token(prompt + n),
            "M1 cumulative PFLOPs": m1.cumulative(n, prompt) / 1e15,
            "R1 cumulative PFLOPs": r1.cumulative(n, prompt) / 1e15,
            "cumulative ratio M1/R1": m1.cumulative(n, prompt) / r1.cumulative(n, prompt),
        })
    return rows


def fit_per_ctx(m1: ModelFlops, r1: ModelFlops, ratios: dict[int, float] | None = None,
                prompt: int = 0) -> dict[int, float]:
    """R1's attention FLOPs per cached token that each stated M1/R1 cumulative ratio implies.

    Holds M1 (both terms) and R1's context-independent term fixed and solves
    ``ratio = M1.cumulative(n) / (r1.const·n + x·S(n))`` for ``x``, with S(n) = n·prompt + n(n+1)/2, per point
    ``n`` of ``ratios`` (default: :data:`FIGURE1_RATIOS`). Points that agree with each other support the
    fixed terms; the values say which R1 attention count (:data:`MLA_COUNTS`) the figure used.
    """
    out = {}
    for n, ratio in (FIGURE1_RATIOS if ratios is None else ratios).items():
        s_n = n * prompt + n * (n + 1) / 2
        out[n] = (m1.cumulative(n, prompt) / ratio - r1.const * n) / s_n
    return out

"""Generation FLOPs of MiniMax-M1 (hybrid lightning/softmax) versus DeepSeek-R1 (MLA, dense softmax).

What is counted, per generated token whose context holds ``t`` tokens (itself included):

- every matrix multiplication with weights, 2 FLOPs per multiply-add: attention projections, active MoE
  experts (top-k routed + shared), the router, dense MLPs, the LM head (the embedding lookup is free);
- softmax attention: QKᵀ and AV over the ``t`` cached keys: 2·H·(d_qk + d_v)·t per layer — this is the term
  that grows with context;
- lightning attention (decode recurrence S ← λS + kᵀv, o = qS): 5·H·d² per layer, independent of ``t``
  (decay, outer product and add: 3·H·d²; readout 2·H·d²);
- not counted: norms, activations, softmax exponentials, RoPE, sampling (elementwise, O(hidden) per token).

DeepSeek-R1's multi-head latent attention (MLA) has two decode forms. ``mla="naive"`` (default) attends
per head over the decompressed q/k of 192 dims (128 no-RoPE + 64 RoPE) and v of 128 dims, with the K/V
up-projection counted once per token (the usual "MHA-equivalent" count, as in the DeepSeek-V3 report's
per-token FLOPs). ``mla="absorbed"`` folds the up-projections into the query/output so that attention runs
in the 512-dim latent space (+64 RoPE dims) — fewer weights per token but 3.4× more attention FLOPs per
cached token; it is what inference engines run for long contexts.

Two readings of "FLOPs at generation length n": ``per_token`` = the FLOPs of generating token n (the
marginal cost), ``cumulative`` = all FLOPs to generate tokens 1..n (after ``prompt`` prompt tokens, whose
prefill is not counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lumos.core.errors import bad_param

__all__ = ["ModelFlops", "minimax_m1", "deepseek_r1", "from_minimax_config", "generation_flops", "compare_table"]


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


def minimax_m1(**overrides: Any) -> ModelFlops:
    """MiniMax-M1 (config.json of MiniMax-AI/MiniMax-M1, reference §2.1)."""
    c = dict(hidden=6144, layers=80, heads=64, head_dim=128, kv_heads=8, inter=9216, experts=32, top_k=2,
             vocab=200064, softmax_every=8)
    c.update(overrides)
    softmax_layers = c["layers"] // c["softmax_every"]
    return _hybrid("MiniMax-M1", c["hidden"], c["layers"], softmax_layers, c["heads"], c["head_dim"], c["kv_heads"],
                   c["inter"], c["experts"], c["top_k"], c["vocab"])


def from_minimax_config(config: Any, name: str = "config") -> ModelFlops:
    """FLOPs model of a lumos :class:`~lumos.models.MiniMaxConfig` (any size)."""
    softmax_layers = sum(1 for k in config.attn_type_list if k == 1)
    return _hybrid(name, config.hidden_size, config.num_hidden_layers, softmax_layers, config.num_attention_heads,
                   config.head_dim, config.num_key_value_heads, config.intermediate_size, config.num_local_experts,
                   config.num_experts_per_tok, config.vocab_size)


def _hybrid(name: str, hidden: int, layers: int, softmax_layers: int, heads: int, d: int, kv_heads: int,
            inter: int, experts: int, top_k: int, vocab: int) -> ModelFlops:
    lightning_layers = layers - softmax_layers
    hd = heads * d
    p_lightning = 5 * hd * hidden                         # qkv (3), output gate, out_proj
    p_softmax = hidden * (hd + 2 * kv_heads * d) + hd * hidden
    p_moe = top_k * 3 * hidden * inter + hidden * experts
    p_head = hidden * vocab
    active = lightning_layers * (p_lightning + p_moe) + softmax_layers * (p_softmax + p_moe) + p_head
    parts = {
        "lightning projections": 2.0 * lightning_layers * p_lightning,
        "lightning recurrence": 5.0 * lightning_layers * heads * d * d,
        "softmax projections": 2.0 * softmax_layers * p_softmax,
        "MoE (routed + router)": 2.0 * layers * p_moe,
        "LM head": 2.0 * p_head,
    }
    const = sum(parts.values())
    per_ctx = softmax_layers * 2.0 * heads * (d + d)      # QKᵀ and AV, per cached token
    return ModelFlops(name, const, per_ctx, float(active), parts)


def deepseek_r1(mla: str = "naive", **overrides: Any) -> ModelFlops:
    """DeepSeek-R1 = DeepSeek-V3 architecture (config.json of deepseek-ai/DeepSeek-R1, reference §3)."""
    if mla not in ("naive", "absorbed"):
        raise bad_param("mla", "'naive' or 'absorbed'", mla, owner="deepseek_r1")
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


def generation_flops(model: ModelFlops, lengths: list[int], prompt: int = 0) -> list[dict[str, float]]:
    """Rows ``{length, per_token, cumulative}`` for each generation length."""
    return [{"length": n, "per_token": model.per_token(prompt + n), "cumulative": model.cumulative(n, prompt)}
            for n in lengths]


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

"""Deployment planner: memory per GPU of a MiniMax hybrid model for inference and RL training.

For a config (the released MiniMax-M1 by default, see :data:`lumos.analysis.sizes.PRESETS`), a GPU count N, a
context length L (tokens per sequence: prompt + generation) and a batch B (sequences, global), it adds up per
GPU under five layouts:

- ``"fsdp"``: FSDP2/ZeRO-3 over all N ranks. Every parameter, gradient and optimizer state is sharded N ways;
  each rank gathers whole decoder layers (bf16) while it runs them and holds ceil(B/N) of the sequences.
- ``"fsdp+ep"``: lumos's own layout (:func:`lumos.distributed.parallel.shard_model` with ``expert_parallel``): a
  (dp, ep) mesh with ep = gcd(N, experts), the largest degree that divides both. Each ep rank holds experts/ep
  whole experts (replicated over dp) and FSDP2 shards everything else over ep only (HSDP: replicated over dp), so
  a GPU holds 1/ep of every parameter, whatever dp is: memory stops falling at ep = experts. A rank gathers the
  dense part of a layer; its experts need no gather. Counts with ep = 1 (plain FSDP) are not EP layouts.
- ``"fsdp+ep-full"``: the same expert split, with experts and dense weights also FSDP-sharded over dp
  (torchtitan's layout; not what lumos implements): 1/N of every parameter; a rank gathers the dense part of a
  layer and its experts/ep experts.
- ``"tp"``: tensor parallelism of degree N (Megatron column/row splits of every projection and expert, vocab-split
  embedding and head, with sequence parallelism for activations). N must divide the attention heads; norms and
  routers stay whole; every rank sees all B sequences, and a softmax layer's KV heads are split while N ≤ kv heads
  and replicated beyond. More than 8 ranks spans nodes (slow), which memory does not show.
- ``"fsdp+tp"`` (the usual multi-node layout, for comparison): TP inside a node (the largest degree ≤ 8 that
  divides N and the heads; at least 2), FSDP over the nodes' TP shards.

What is counted, in bytes (dtypes in :class:`Precision`):

- inference: the weights in ``weight_dtype`` (:data:`WEIGHT_DTYPES`: bf16/fp16, fp8 with a fp32 scale per
  128×128 block, int8/int4 with a bf16 scale per group of 128 weights; the embedding, the LM head, the norms and
  the routers stay 16-bit, as quantization recipes keep them); FSDP's gathered layers (the running one and the
  prefetched next one); the softmax layers' KV cache, 2·kv_heads·head_dim per token per layer in ``kv_dtype``
  (:data:`KV_DTYPES`); the lightning layers' (H, D, D) fp32 states, independent of L; one layer's activations
  for a prefill chunk (``prefill_chunk`` tokens).
- training (one optimizer micro-step over B sequences of L tokens; RL's rollouts run in a separate inference
  engine and the CISPO recipe has no reference model): fp32 parameter shards, fp32 gradients, AdamW m and v in
  fp32 (16 B per parameter, as ZeRO's mixed-precision count); FSDP's two gathered layers plus one layer of
  unsharded bf16 gradients; every layer's activations saved for backward (:func:`activation_bytes_per_token`):
  lumos's trainer (``lumos.rl.trainer``, ``lumos.rl.sft``) has no activation checkpointing, so none is assumed;
  the logits (bf16 + fp32) of all the micro-step's tokens at once, as lumos computes them (``logits_chunk``
  plans a chunked cross-entropy instead, which lumos does not have).
- not counted: the CUDA context, NCCL buffers, allocator fragmentation and the compile cache. A plan fits when its
  total is at most (1 − ``headroom``) × the GPU memory (default: 90 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lumos.analysis.flops import from_minimax_config
from lumos.analysis.sizes import ParamCounts, all_softmax, count_params
from lumos.analysis.units import format_bytes, memory_unit
from lumos.core.errors import LumosError
from lumos.core.validation import Problems, check_choice, check_float, check_int
from lumos.models.minimax.config import MiniMaxConfig

__all__ = ["STRATEGIES", "WEIGHT_DTYPES", "KV_DTYPES", "GiB", "Precision", "PlanSpec", "Breakdown", "activation_terms", "activation_bytes_per_token",
           "memory", "smallest_fit", "plan", "assumptions", "summary_rows", "table_rows", "count_rows"]

STRATEGIES = ("fsdp", "fsdp+ep", "fsdp+ep-full", "tp", "fsdp+tp")
_NODE = 8  # GPUs per node: the largest TP degree of "fsdp+tp"
GiB = float(1 << 30)


#: Bytes per quantizable weight (projections and experts) for inference: the element plus its share of the
#: quantization scales (fp8: one fp32 scale per 128×128 block; int8/int4: one bf16 scale per group of 128).
WEIGHT_DTYPES: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1 + 4 / (128 * 128), "int8": 1 + 2 / 128,
                                   "int4": 0.5 + 2 / 128}
#: Bytes per KV-cache element (per-tensor scales of fp8/int8 are negligible and not counted).
KV_DTYPES: dict[str, int] = {"bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}
#: Upper bounds of the planner's integer inputs: far beyond any real deployment, small enough for exact floats.
MAX_GPUS, MAX_TOKENS = 1 << 20, 1 << 40


@dataclass(frozen=True)
class Precision:
    """Bytes per element of each kind of tensor (defaults: bf16 compute, fp32 master/grads/optimizer/states).

    ``weight`` applies to the quantizable weights (projections, experts); ``weight16`` to the embedding, the LM
    head, the norms and the routers, which stay 16-bit. Training always uses the defaults."""

    weight: float = 2       # inference weights and FSDP's gathered compute copy (see WEIGHT_DTYPES)
    weight16: int = 2       # embedding, LM head, norms, routers
    master: int = 4         # fp32 parameter shards (training)
    grad: int = 4           # fp32 gradient shards (FSDP2 reduce dtype)
    adam: int = 8           # AdamW m and v, fp32
    act: int = 2            # bf16 activations
    kv: int = 2             # KV cache (see KV_DTYPES)
    state: int = 4          # fp32 lightning states (the release keeps them fp32)
    logits: int = 6         # bf16 logits + their fp32 copy


@dataclass
class PlanSpec:
    """One planning question. All problems with the numbers are reported together in one :class:`LumosError`."""

    config: MiniMaxConfig
    gpus: int
    gpu_memory_gib: float
    context: int
    batch: int
    train: bool = False
    headroom: float = 0.10
    prefill_chunk: int = 8192
    logits_chunk: int | None = None
    name: str = "model"
    dtype: str = "bf16"
    kv_dtype: str | None = None
    precision: Precision = field(init=False)

    def __post_init__(self) -> None:
        p = Problems("lumos plan")
        for flag, v, high in (("--gpus", self.gpus, MAX_GPUS), ("--context", self.context, MAX_TOKENS),
                              ("--batch", self.batch, MAX_TOKENS), ("--prefill-chunk", self.prefill_chunk, MAX_TOKENS),
                              ("--logits-chunk", 1 if self.logits_chunk is None else self.logits_chunk, MAX_TOKENS)):
            p.check(check_int, v, flag, 1, high)
        p.check(check_float, self.gpu_memory_gib, "--gpu-memory", 0, 1e9, low_inclusive=False,
                fix="Give GiB per GPU, e.g. 80 for an H100 or 141 for an H200.")
        p.check(check_float, self.headroom, "--headroom", 0, 1, high_inclusive=False)
        p.check(check_choice, self.dtype, "--dtype", tuple(WEIGHT_DTYPES))
        if self.kv_dtype is not None:
            p.check(check_choice, self.kv_dtype, "--kv-dtype", tuple(KV_DTYPES))
        if self.train and (self.dtype != "bf16" or self.kv_dtype is not None):
            p.require(False, "--dtype / --kv-dtype plan inference; lumos trains with fp32 master weights, gradients "
                      "and AdamW states and bf16 compute (drop --dtype / --kv-dtype when planning --train).")
        p.require(isinstance(self.config, MiniMaxConfig),
                  f"config must be a MiniMaxConfig, got {type(self.config).__name__}.")
        p.raise_if_any()
        self.precision = Precision(weight=WEIGHT_DTYPES[self.dtype], kv=KV_DTYPES[self.kv_cache_dtype])

    @property
    def kv_cache_dtype(self) -> str:
        """The KV cache's dtype: ``kv_dtype``, else fp8 with fp8 weights, else bf16 (int8/int4 are weight-only)."""
        if self.kv_dtype is not None:
            return self.kv_dtype
        return "fp8" if self.dtype == "fp8" else "bf16"

    @property
    def usable_bytes(self) -> float:
        return self.gpu_memory_gib * GiB * (1 - self.headroom)


@dataclass
class Breakdown:
    """Memory per GPU of one layout at one GPU count: ``parts`` in bytes (transient parts included)."""

    strategy: str
    gpus: int
    valid: bool
    why_not: str = ""
    degrees: dict[str, int] = field(default_factory=dict)
    parts: dict[str, float] = field(default_factory=dict)
    totals: dict[str, float] = field(default_factory=dict)


def activation_terms(config: MiniMaxConfig, precision: Precision = Precision()) -> dict[str, dict[str, float]]:
    """Bytes per token saved for backward, by layer part and tensor (the autograd graph of one layer).

    Lightning block: the block input, the normed input (read by qkv_proj and output_gate), qkv before and after
    SiLU, the attention output, its RMSNorm, the gate logits and the gated output; plus the chunked form's fp32
    (H, D, D) state at each block boundary (one per ``block_size`` tokens). Softmax block: input, normed input,
    q, k, v (post-RoPE), the output and FlashAttention's fp32 log-sum-exp per head. MoE block: input, normed
    input, fp32 router logits, and per routed copy (top-k) the dispatched input, w1 and w3 outputs, their gated
    product and the expert output.
    """
    h, hd = config.hidden_size, config.num_attention_heads * config.head_dim
    kvd, heads, d = config.num_key_value_heads * config.head_dim, config.num_attention_heads, config.head_dim
    a, f32 = precision.act, 4
    return {
        "lightning": {"block input + normed input": 2 * h * a, "qkv before and after SiLU": 6 * hd * a,
                      "output, its norm, gate logits, gated output": 4 * hd * a,
                      "block-boundary states (fp32)": heads * d * d * precision.state / config.block_size},
        "softmax": {"block input + normed input": 2 * h * a, "q, k, v": (hd + 2 * kvd) * a, "output": hd * a,
                    "log-sum-exp (fp32)": heads * f32},
        "moe": {"block input + normed input": 2 * h * a, "router logits (fp32)": config.num_local_experts * f32,
                "per routed copy: input, w1, w3, product, output":
                    config.num_experts_per_tok * (2 * h + 3 * config.intermediate_size) * a},
        "model": {"embedding output + final norm input": 2 * h * a},
    }


def activation_bytes_per_token(config: MiniMaxConfig, precision: Precision = Precision()) -> dict[str, float]:
    """``{"all layers": …, "largest layer": …, "layer inputs": …, "model": …}`` bytes per token."""
    t = {k: sum(v.values()) for k, v in activation_terms(config, precision).items()}
    layer = [t["moe"] + (t["softmax"] if kind == 1 else t["lightning"]) for kind in config.attn_type_list]
    return {"all layers": sum(layer), "largest layer": max(layer),
            "layer inputs": config.num_hidden_layers * config.hidden_size * precision.act, "model": t["model"]}


def _degrees(strategy: str, n: int, config: MiniMaxConfig) -> tuple[dict[str, int], str]:
    """(dp, ep, tp) of ``strategy`` on ``n`` GPUs, and why it cannot run there ("" if it can)."""
    heads = config.num_attention_heads
    if strategy == "fsdp":
        return {"dp": n, "ep": 1, "tp": 1}, ""
    if strategy in ("fsdp+ep", "fsdp+ep-full"):
        e = config.num_local_experts
        ep = math.gcd(n, e)
        why = f"expert parallelism needs a GPU count with a common factor > 1 with the {e} experts" if ep == 1 else ""
        return {"dp": n // ep, "ep": ep, "tp": 1}, why
    if strategy == "tp":
        why = f"tensor parallelism needs the GPU count to divide the {heads} attention heads" if heads % n else ""
        return {"dp": 1, "ep": 1, "tp": n}, why
    if strategy == "fsdp+tp":
        tp = max(t for t in range(1, _NODE + 1) if n % t == 0 and heads % t == 0)
        why = f"FSDP+TP needs a GPU count with a factor in 2..{_NODE} that divides the {heads} heads" if tp == 1 else ""
        return {"dp": n // tp, "ep": 1, "tp": tp}, why
    raise LumosError(f"Unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}.")


def memory(spec: PlanSpec, strategy: str, gpus: int | None = None, context: int | None = None) -> Breakdown:
    """Per-GPU memory of ``strategy`` at ``gpus`` (default: ``spec.gpus``) and ``context`` (default: spec's)."""
    return _memory(spec, strategy, spec.gpus if gpus is None else gpus, spec.context if context is None else context,
                   count_params(spec.config), activation_bytes_per_token(spec.config, spec.precision))


def _memory(spec: PlanSpec, strategy: str, n: int, L: int, c: ParamCounts, act: dict[str, float]) -> Breakdown:
    cfg, pr = spec.config, spec.precision
    deg, why = _degrees(strategy, n, cfg)
    out = Breakdown(strategy, n, not why, why, deg)
    if why:
        return out
    dp, ep, tp = deg["dp"], deg["ep"], deg["tp"]
    small = c.norms_and_routers                      # whole on every TP rank, sharded by FSDP
    layer_experts = c.experts_per_layer * c.expert
    eh = c.embed + c.lm_head                         # 16-bit with any --dtype, like the norms and routers
    dense, dense16 = c.max_layer - layer_experts, _layer_small(cfg, c)  # the gathered layer's dense part
    w, w16 = pr.weight, pr.weight16

    def quant(params: float, params16: float) -> float:     # bytes of params, params16 of which stay 16-bit
        return (params - params16) * w + params16 * w16

    if strategy == "fsdp+ep":                        # HSDP over ep, replicated over dp; experts whole per rank
        per_gpu_params = c.total / ep
        weight_bytes = quant(c.total, small + eh) / ep
        gather, gather_bytes = dense, quant(dense, dense16)
    else:
        per_gpu_params = (c.total - small) / n + small / (n // tp)
        weight_bytes = quant(c.total - small, eh) / n + small * w16 / (n // tp)
        gather = (dense / tp if n > tp else 0.0) + (layer_experts / ep / tp if dp > 1 else 0.0)
        gather_bytes = ((quant(dense, dense16) / tp if n > tp else 0.0)
                        + (layer_experts * w / ep / tp if dp > 1 else 0.0))
    seqs = math.ceil(spec.batch / (dp * ep))         # every rank outside a TP group takes its own sequences
    tokens = seqs * L / tp                           # TP with sequence parallelism splits activations tp ways
    kv_heads = math.ceil(cfg.num_key_value_heads / tp)
    heads = cfg.num_attention_heads // tp
    p = out.parts
    if spec.train:
        p["weights (fp32 shards)"] = per_gpu_params * pr.master
        p["gradients (fp32)"] = per_gpu_params * pr.grad
        p["AdamW m, v (fp32)"] = per_gpu_params * pr.adam
        p["gathered layers (2 bf16 + 1 layer's bf16 grads)"] = 3 * gather * pr.weight16
        chunk = seqs * L if spec.logits_chunk is None else min(spec.logits_chunk, seqs * L)
        p["logits"] = chunk * cfg.vocab_size * pr.logits / tp
        p["activations (every layer)"] = tokens * (act["all layers"] + act["model"])
        out.totals = {"training": sum(p.values())}
    else:
        p[f"weights ({spec.dtype})"] = weight_bytes
        p["gathered layers (2 layers)"] = 2 * gather_bytes
        p["KV cache (softmax layers)"] = seqs * L * c.n_softmax * 2 * kv_heads * cfg.head_dim * pr.kv
        p["lightning states (H, D, D)"] = seqs * c.n_lightning * heads * cfg.head_dim ** 2 * pr.state
        p["prefill workspace"] = min(spec.prefill_chunk, seqs * L) / tp * (act["largest layer"] + act["model"])
        out.totals = {"inference": sum(p.values())}
    return out


def _layer_small(cfg: MiniMaxConfig, c: ParamCounts) -> int:
    """The 16-bit parameters (norms, router) of the largest decoder layer."""
    i = c.layers.index(c.max_layer)
    return c.layer_norms + c.router + (c.lightning_norm if cfg.attn_type_list[i] == 0 else 0)


def _fits(b: Breakdown, spec: PlanSpec, key: str) -> bool:
    return b.valid and b.totals[key] <= spec.usable_bytes


def smallest_fit(spec: PlanSpec, strategy: str, key: str, max_gpus: int = 4096, context: int | None = None) -> int | None:
    """The smallest GPU count at which ``strategy``'s total ``key`` fits, or None up to ``max_gpus``."""
    c, act = count_params(spec.config), activation_bytes_per_token(spec.config, spec.precision)
    L = spec.context if context is None else context
    for n in range(1, max_gpus + 1):
        if _fits(_memory(spec, strategy, n, L, c, act), spec, key):
            return n
    return None


def plan(spec: PlanSpec) -> dict[str, Any]:
    """The planner's answer: per-layout breakdowns at ``spec.gpus``, smallest fitting counts, decode FLOPs.

    Returns ``{"breakdowns": [Breakdown], "smallest": {strategy: {total: N or None}}, "params": ParamCounts,
    "decode_gflops_per_token": float, "all_softmax_decode_gflops_per_token": float, "assumptions": [str]}``.
    """
    keys = ("training",) if spec.train else ("inference",)
    bds = [memory(spec, s) for s in STRATEGIES]
    smallest = {s: {k: smallest_fit(spec, s, k) for k in keys} for s in STRATEGIES}
    fl = from_minimax_config(spec.config, spec.name)
    fl_soft = from_minimax_config(all_softmax(spec.config), "all-softmax")
    return {"breakdowns": bds, "smallest": smallest, "params": count_params(spec.config),
            "decode_gflops_per_token": fl.per_token(spec.context) / 1e9,
            "all_softmax_decode_gflops_per_token": fl_soft.per_token(spec.context) / 1e9,
            "assumptions": assumptions(spec)}


def assumptions(spec: PlanSpec) -> list[str]:
    """The planner's assumptions, with this spec's numbers, for the command output and the report (ASCII)."""
    pr, cfg = spec.precision, spec.config
    unit, scale = memory_unit(spec.usable_bytes)
    a = [f"A plan fits when its total <= {1 - spec.headroom:.0%} of {spec.gpu_memory_gib:g} GiB "
         f"({spec.usable_bytes / scale:.1f} {unit}); the rest is left for the CUDA context, NCCL buffers and "
         "fragmentation. Units are binary (1 GiB = 2^30 B).",
         f"--batch {spec.batch} sequences of --context {spec.context} tokens in all; FSDP and FSDP+EP give each "
         "rank ceil(batch / GPUs) of them, tensor parallelism gives every rank all of them.",
         "FSDP+EP: ep = gcd(GPUs, experts); 'fsdp+ep' is lumos.distributed.parallel's layout (every parameter split ep "
         "ways, replicated over dp), 'fsdp+ep-full' also shards over dp (torchtitan's; not in lumos); routing "
         "assumed balanced. "
         f"TP: the GPU count must divide {cfg.num_attention_heads} heads; KV heads ({cfg.num_key_value_heads}) are "
         "replicated beyond that degree; more than 8 TP ranks crosses nodes."]
    if spec.train:
        act = activation_bytes_per_token(cfg, pr)
        tokens = math.ceil(spec.batch / spec.gpus) * spec.context
        full = tokens * (act["all layers"] + act["model"])
        ckpt = tokens * (act["layer inputs"] + act["largest layer"] + act["model"])
        chunk = ("all the micro-step's tokens at once, as lumos's trainer computes them" if spec.logits_chunk is None
                 else f"chunks of {spec.logits_chunk} tokens (a chunked cross-entropy; lumos's trainer has none)")
        a += [f"Training: fp32 parameter shards ({pr.master} B), fp32 gradients ({pr.grad} B), AdamW m and v "
              f"({pr.adam} B): 16 B per parameter; bf16 activations; FSDP gathers 2 layers and 1 layer of "
              f"gradients at a time; logits (bf16 + fp32, {pr.logits} B per vocabulary entry) of {chunk}.",
              "RL training: rollouts run in a separate inference engine (plan them without --train); CISPO has no "
              "reference model; the old policy's log-probs are one number per token.",
              "No activation checkpointing: lumos's trainer (lumos.rl.trainer, lumos.rl.sft) keeps every layer's "
              f"activations for backward, so all are counted ({format_bytes(full)} per GPU under fsdp here; per-layer "
              f"checkpointing, which lumos does not have, would keep {format_bytes(ckpt)}). One sequence's "
              "activations that exceed a GPU need context parallelism, which is not modelled.",
              "Activations: the bf16 tensors a fused implementation saves for backward (activation_terms); lumos's "
              "eager modules save 1.55x that on a small config (fp32 upcasts in norms and lightning attention; "
              "measured with autograd's saved-tensor hooks in tests/analysis/test_plan.py)."]
    else:
        q = {"bf16": "", "fp16": "", "fp8": " (+ a fp32 scale per 128x128 block)",
             "int8": " (+ a bf16 scale per 128 weights)", "int4": " (+ a bf16 scale per 128 weights)"}[spec.dtype]
        a += [f"Inference: projection and expert weights in {spec.dtype}{q}, {pr.weight:.4g} B per weight; the "
              "embedding, LM head, norms and routers in bf16; KV cache in "
              f"{spec.kv_cache_dtype} ({pr.kv} B per element); fp32 lightning states (H, D, D) per lightning layer "
              f"and sequence; activations of one layer for a {spec.prefill_chunk}-token prefill chunk."]
    a.append("Decode FLOPs per token: lumos.analysis.flops (2 FLOPs per multiply-add, attention over the whole "
             "context; `lumos flops` explains the count).")
    return a


def summary_rows(result: dict[str, Any], spec: PlanSpec) -> list[dict[str, Any]]:
    """One row per layout, in GiB: each part and the total at ``spec.gpus``, whether it fits, the smallest count."""
    rows = []
    for b in result["breakdowns"]:
        row: dict[str, Any] = {"layout": b.strategy, "GPUs": spec.gpus,
                               "degrees": ", ".join(f"{k} {v}" for k, v in b.degrees.items())}
        if not b.valid:
            row["note"] = b.why_not
        for k, v in b.parts.items():
            row[f"{k} (GiB)"] = v / GiB
        for k, v in b.totals.items():
            row[f"total, {k} (GiB)"] = v / GiB
            row[f"fits, {k}"] = "yes" if _fits(b, spec, k) else "no"
        for k, n in result["smallest"][b.strategy].items():
            row[f"smallest GPU count, {k}"] = n if n is not None else "none <= 4096"
        rows.append(row)
    return rows


def table_rows(result: dict[str, Any], spec: PlanSpec, wide: bool = False
               ) -> tuple[list[dict[str, Any]], str, list[str]]:
    """What the CLI prints: one row per layout with the total, whether it fits and the smallest GPU count
    (``wide``: every part too), the memory unit of the table, and notes on layouts that cannot run at
    ``spec.gpus``. Without ``wide`` the table fits in 120 columns."""
    unit, scale = memory_unit(spec.usable_bytes)        # the GPU's own scale: totals read against it
    rows, notes = [], []
    for b in result["breakdowns"]:
        row: dict[str, Any] = {"layout": b.strategy,
                               "dp/ep/tp": "/".join(str(b.degrees[k]) for k in ("dp", "ep", "tp")) if b.valid else "-"}
        if wide:
            row.update({f"{k} ({unit})": v / scale for k, v in b.parts.items()})
        (key,) = result["smallest"][b.strategy]
        row[f"total ({unit})"] = b.totals[key] / scale if b.valid else "-"
        row["fits"] = ("yes" if _fits(b, spec, key) else "no") if b.valid else f"n/a [{len(notes) + 1}]"
        n = result["smallest"][b.strategy][key]
        row["min GPUs"] = n if n is not None else "> 4096"
        if not b.valid:
            notes.append(f"[{len(notes) + 1}] {b.strategy} on {spec.gpus} GPUs: {b.why_not}.")
        rows.append(row)
    return rows, unit, notes


def count_rows(counts: ParamCounts) -> list[dict[str, Any]]:
    """Parameter counts of the model, by part, for the report."""
    return [{"part": "total", "parameters": counts.total},
            {"part": "active per token (without embedding and LM head)", "parameters": counts.active},
            {"part": "experts (all layers)", "parameters": counts.experts},
            {"part": "dense (attention, norms, routers, embedding, head)", "parameters": counts.dense},
            {"part": "largest decoder layer", "parameters": counts.max_layer}]

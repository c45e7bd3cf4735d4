"""The ``lumos plan`` run directory: the planner's tables, its assumptions, and memory vs context length."""

from __future__ import annotations

import dataclasses
from typing import Any

from lumos.analysis.flops import from_minimax_config
from lumos.analysis.plan import STRATEGIES, GiB, PlanSpec, assumptions, count_rows, memory, plan, summary_rows
from lumos.analysis.sizes import all_softmax, count_params
from lumos.analysis.units import format_count, format_flops

__all__ = ["plan_report", "context_sweep", "SWEEP_CONTEXTS"]

#: Context lengths of the memory-vs-context sweep: 1K ... 1M tokens.
SWEEP_CONTEXTS = tuple(1024 * 2 ** k for k in range(11))


def _main_key(spec: PlanSpec) -> str:
    return "training" if spec.train else "inference"


def _plot_strategy(spec: PlanSpec) -> str:
    """The layout with the smallest per-GPU total at ``spec.gpus`` (the one the sweep plots)."""
    key = _main_key(spec)
    valid = [b for b in (memory(spec, s) for s in STRATEGIES) if b.valid]
    return min(valid, key=lambda b: b.totals[key]).strategy


def context_sweep(spec: PlanSpec, contexts: tuple[int, ...] = SWEEP_CONTEXTS,
                  strategy: str | None = None) -> list[dict[str, Any]]:
    """Per context length: cache per sequence, per-GPU total and decode FLOPs, for the model and its all-softmax twin.

    The twin has the same hidden size, layers, heads, KV heads and experts, with softmax attention in every layer
    (its parameter count differs by the attention projections; both counts are in the report).
    """
    strategy = strategy or _plot_strategy(spec)
    twin = dataclasses.replace(spec, config=all_softmax(spec.config), name="all-softmax")
    key = _main_key(spec)
    rows = []
    for L in sorted(set(contexts) | {spec.context}):
        row: dict[str, Any] = {"context": L}
        for tag, s in ((spec.name, spec), ("all-softmax", twin)):
            per_seq = dataclasses.replace(s, batch=1, train=False)
            b1 = memory(per_seq, "fsdp", 1, L)
            row[f"{tag} KV + states per sequence (GiB)"] = (b1.parts["KV cache (softmax layers)"]
                                                            + b1.parts["lightning states (H, D, D)"]) / GiB
            row[f"{tag} per GPU, {strategy} (GiB)"] = memory(s, strategy, None, L).totals[key] / GiB
            row[f"{tag} decode GFLOPs/token"] = from_minimax_config(s.config).per_token(L) / 1e9
        rows.append(row)
    return rows


def _sweep_figure(spec: PlanSpec, rows: list[dict[str, Any]], strategy: str) -> Any:
    import matplotlib.pyplot as plt

    xs = [r["context"] / 1024 for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    for tag, style in ((spec.name, "C0-o"), ("all-softmax", "C3-s")):
        a1.plot(xs, [r[f"{tag} KV + states per sequence (GiB)"] for r in rows], style, ms=3, label=tag)
        a2.plot(xs, [r[f"{tag} per GPU, {strategy} (GiB)"] for r in rows], style, ms=3, label=tag)
    a2.axhline(spec.usable_bytes / GiB, color="k", ls="--", lw=1,
               label=f"usable: {spec.usable_bytes / GiB:.0f} of {spec.gpu_memory_gib:g} GiB")
    ticks = [x for x in xs if x in (1, 4, 16, 64, 256, 1024)]
    for ax in (a1, a2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [f"{t:g}K" for t in ticks])
        ax.set_xlabel("context length (tokens)")
        ax.legend(fontsize=8)
    a1.set_yscale("log")
    a1.set_ylabel("GiB per sequence")
    a1.set_title("inference cache: KV (softmax) + (H, D, D) states (lightning)")
    mode = "RL training" if spec.train else f"inference, {spec.dtype} weights"
    a2.set_ylabel("GiB per GPU")
    a2.set_title(f"{mode}: {strategy} on {spec.gpus} GPUs, batch {spec.batch}")
    fig.tight_layout()
    return fig


def plan_report(run: Any, spec: PlanSpec) -> dict[str, Any]:
    """Fill ``run`` with the plan: summary, parameter counts, assumptions, the context sweep; return the plan."""
    import matplotlib

    matplotlib.use("Agg")

    result = plan(spec)
    rows = summary_rows(result, spec)
    for r in rows:
        run.log(r)
    strategy = _plot_strategy(spec)
    sweep = context_sweep(spec, strategy=strategy)
    fig = _sweep_figure(spec, sweep, strategy)
    run.save_figure(fig, "memory_vs_context")
    mode = "RL training" if spec.train else "inference"
    sec = run.report.section(f"Deployment plan: {spec.name}, {mode}, {spec.gpus} × {spec.gpu_memory_gib:g} GiB, "
                             f"context {spec.context}, batch {spec.batch}")
    sec.table(rows, caption="Memory per GPU (GiB) by part and layout; 'smallest GPU count' searches 1..4096.")
    sec.text(f"Decode FLOPs per token at context {spec.context}: "
             f"{format_flops(result['decode_gflops_per_token'] * 1e9)} "
             f"({format_flops(result['all_softmax_decode_gflops_per_token'] * 1e9)} for the all-softmax twin).")
    sec.table([{"assumption": a} for a in assumptions(spec)])
    sec.table(count_rows(result["params"]), caption=f"Parameters of {spec.name}.")
    twin = count_params(all_softmax(spec.config))
    sec2 = run.report.section("Memory vs context length: hybrid vs all-softmax")
    sec2.text(f"The same model with softmax attention in every layer ({format_count(twin.total)} parameters vs "
              f"{format_count(result['params'].total)}) keeps K and V for every layer; the hybrid keeps them for its "
              f"{result['params'].n_softmax} softmax layers and a fixed (H, D, D) state for the "
              f"{result['params'].n_lightning} lightning layers.")
    sec2.figure(fig)
    sec2.table(sweep)
    return result

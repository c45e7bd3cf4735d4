"""``lumos plan`` (deployment planner) and ``lumos flops`` (generation FLOPs, M1 vs R1): model arithmetic, no weights."""

from __future__ import annotations

import argparse
from typing import Any

from lumos.cli.common import add_run_options, parse_csv_list, print_table

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="deployment planner: memory per GPU, smallest GPU count, decode FLOPs",
                       description="Per-GPU memory of a MiniMax hybrid model (weights, gradients, AdamW states, "
                       "activations, KV cache, lightning states) for inference (bf16, fp8, int8 or int4 weights; "
                       "bf16, fp8 or int8 KV cache) or RL training as lumos's trainer runs it, under FSDP, FSDP+EP, "
                       "tensor parallelism and FSDP+TP; the smallest GPU count that fits; decode FLOPs per token. "
                       "Writes a run directory with a memory-vs-context plot against an all-softmax model of the "
                       "same shape.")
    p.add_argument("--model", default="minimax-m1",
                   help="a released model name (minimax-m1) or a config.json / checkpoint directory (default: minimax-m1)")
    p.add_argument("--gpus", type=int, required=True, help="number of GPUs")
    p.add_argument("--gpu-memory", type=float, required=True, help="memory per GPU in GiB (H100: 80, H200: 141)")
    p.add_argument("--context", type=int, required=True, help="tokens per sequence (prompt + generation)")
    p.add_argument("--batch", type=int, default=1, help="sequences in flight / per optimizer micro-step (default: 1)")
    p.add_argument("--train", action="store_true", help="plan RL training (default: inference)")
    p.add_argument("--headroom", type=float, default=0.10,
                   help="fraction of GPU memory kept free for the CUDA context, NCCL, fragmentation (default: 0.10)")
    p.add_argument("--prefill-chunk", type=int, default=8192, help="prefill chunk in tokens (default: 8192)")
    p.add_argument("--logits-chunk", type=int, default=None,
                   help="plan a chunked cross-entropy of N tokens (default: all tokens at once, as lumos's trainer)")
    p.add_argument("--dtype", choices=("bf16", "fp16", "fp8", "int8", "int4"), default="bf16",
                   help="inference weights (projections and experts; embedding, head, norms, routers stay bf16); "
                   "fp8 also sets the KV cache to fp8 (default: bf16)")
    p.add_argument("--kv-dtype", choices=("bf16", "fp16", "fp8", "int8"), default=None,
                   help="inference KV cache (default: fp8 with --dtype fp8, else bf16)")
    p.add_argument("--wide", action="store_true", help="print every memory part (a table wider than 120 columns)")
    add_run_options(p)
    p.set_defaults(func=_plan)

    f = sub.add_parser("flops", help="generation FLOPs: MiniMax-M1 vs DeepSeek-R1 (table + plot)",
                       description="Per-token and cumulative generation FLOPs versus generated length, and the "
                       "paper's claim (< 50%% of DeepSeek-R1 at 64K, ~25%% at 100K) checked. "
                       "--cumulative-figure reproduces the paper's Figure 1 (right).")
    f.add_argument("--lengths", default="4096,8192,16384,32768,65536,100000,131072",
                   help="comma-separated generation lengths")
    f.add_argument("--prompt", type=int, default=0, help="prompt tokens before generation (default: 0)")
    f.add_argument("--mla", choices=("naive", "padded", "absorbed"), default="naive",
                   help="DeepSeek-R1 attention FLOPs count (see lumos.analysis.flops; default: naive)")
    f.add_argument("--config", default=None, help="also report a lumos/MiniMax config.json")
    f.add_argument("--cumulative-figure", action="store_true",
                   help="add the paper's Figure 1 (right): cumulative FLOPs vs generated tokens, both R1 counts, "
                   "the paper's points, and the attention counts that do and do not reproduce them")
    add_run_options(f)
    f.set_defaults(func=_flops)


def _vars(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k != "func"}


def _plan(args: argparse.Namespace) -> int:
    from lumos.analysis.plan import PlanSpec, assumptions, table_rows
    from lumos.analysis.plan_report import plan_report
    from lumos.analysis.sizes import preset_config, resolve_config
    from lumos.analysis.units import format_count, format_flops, unit_bytes
    from lumos.core.rundir import RunDir

    kw = dict(gpus=args.gpus, gpu_memory_gib=args.gpu_memory, context=args.context, batch=args.batch,
              train=args.train, headroom=args.headroom, prefill_chunk=args.prefill_chunk,
              logits_chunk=args.logits_chunk, dtype=args.dtype, kv_dtype=args.kv_dtype)
    PlanSpec(preset_config("minimax-m1"), **kw)       # the numbers, checked before the model is read
    name, config = resolve_config(args.model)
    spec = PlanSpec(config, name=name, **kw)          # validated before the run directory exists
    with RunDir.create("plan", _vars(args), out=args.out, seed=args.seed, title="lumos plan") as run:
        result = plan_report(run, spec)
    c = result["params"]
    mode = "RL training" if spec.train else f"inference ({spec.dtype} weights, {spec.kv_cache_dtype} KV cache)"
    _say(f"{name}: {format_count(c.total)} parameters, {format_count(c.active)} active per token (without embedding "
         f"and LM head); {mode} on {spec.gpus} x {spec.gpu_memory_gib:g} GiB, context {spec.context}, "
         f"batch {spec.batch}", args.wide)
    rows, unit, notes = table_rows(result, spec, wide=args.wide)
    print_table(rows)
    for note in notes:
        _say(note, args.wide)
    _say(f"decode: {format_flops(result['decode_gflops_per_token'] * 1e9)} per token at context {spec.context} "
         f"(all-softmax model of the same shape: {format_flops(result['all_softmax_decode_gflops_per_token'] * 1e9)})",
         args.wide)
    _say(f"memory in {unit}; fits = total <= {spec.usable_bytes / unit_bytes(unit):.1f} {unit}; min GPUs = the smallest count that fits (up to 4096). "
         "Assumptions:", args.wide)
    for a in assumptions(spec):
        _say(a, args.wide, bullet=True)
    print(f"run directory: {run.path}")
    return 0


def _say(text: str, wide: bool, bullet: bool = False) -> None:
    """Print ``text`` wrapped to 120 columns (not with --wide); ``bullet`` indents it as a list item."""
    import textwrap

    if wide:
        print(("  - " if bullet else "") + text)
        return
    print(textwrap.fill(text, width=_WIDTH, initial_indent="  - " if bullet else "",
                        subsequent_indent="    " if bullet else "", break_on_hyphens=False))


_WIDTH = 120


def _flops(args: argparse.Namespace) -> int:
    from lumos.analysis.flops_report import accounting_candidates, flops_report
    from lumos.analysis.plan import MAX_TOKENS
    from lumos.core.errors import LumosError
    from lumos.core.rundir import RunDir

    try:
        lengths = [int(x) for x in parse_csv_list(args.lengths, what="length")]
    except ValueError:
        raise LumosError(f"--lengths must be comma-separated integers; got {_short(args.lengths)}.") from None
    if any(not 1 <= n <= MAX_TOKENS for n in lengths):
        raise LumosError(f"--lengths must be integers in [1, {MAX_TOKENS}] (2^40 tokens); got {_short(args.lengths)}.")
    if not 0 <= args.prompt <= MAX_TOKENS:
        raise LumosError(f"--prompt must be in [0, {MAX_TOKENS}] tokens; got {_short(str(args.prompt))}.")
    if args.config is not None:
        from lumos.models.minimax.config import MiniMaxConfig

        MiniMaxConfig.from_json(args.config)  # a bad config fails before the run directory exists
    with RunDir.create("flops", _vars(args), out=args.out, seed=args.seed, title="lumos flops") as run:
        rows, verdict = flops_report(run, lengths, prompt=args.prompt, mla=args.mla, config_path=args.config,
                                     cumulative=args.cumulative_figure)
    print_table(rows)
    if args.cumulative_figure:
        print()
        print_table([{k: v for k, v in r.items() if k != "R1 attention per cached token"}
                     for r in accounting_candidates(args.prompt)])
    print(verdict)
    print(f"run directory: {run.path}")
    return 0


def _short(text: str, limit: int = 60) -> str:
    """``text`` for a message: a 400-digit number is cut, not echoed whole."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"

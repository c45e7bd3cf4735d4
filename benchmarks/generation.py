"""Generation speed: lumos ``HybridLM`` with its hybrid cache vs transformers' ``MiniMaxForCausalLM``.

Same random weights in both (lumos saves them in the transformers layout, transformers loads them; the logits are
checked to agree first). Side by side in one run on this machine:

- ``hybrid-7:1`` (8 layers, softmax at layer 7, hidden 512, 8 heads of 64, 2 KV heads, 8 experts top-2,
  expert width 512): prefill time of a C-token prompt and decode ms/token after it, C = 1K, 4K, 16K, for both
  libraries;
- ``all-lightning`` (the same, every layer lightning): lumos decode ms/token at each C — it should not grow.

lumos decodes twice: eagerly (``model(tok, cache=cache)``) and through the compiled one-token step
(``generate(compile=True)``, :mod:`lumos.models.fast_decode`), whose one-off compile time is reported apart
(``compile_s``); the steady-state step is what the ms/token columns show. ``--dtype bfloat16`` runs both libraries
with the same weights cast to bf16 (lightning states stay float32 in both).

Targets (issue 5): lumos ≥ 3× transformers' decode tokens/s at 16K; all-lightning per-token time at 16K ≤ 1.2×
that at 1K. Usage: ``python benchmarks/generation.py [--quick] [--json PATH]`` (``--quick``: a tiny model at
contexts 64/256, seconds). Timings are medians over the decode steps; compare the ratios.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lumos.models import HybridLM, MiniMaxConfig, save_pretrained


def _config(all_lightning: bool, quick: bool) -> MiniMaxConfig:
    layers = 8
    types = [0] * layers if all_lightning else [0] * 7 + [1]
    if quick:
        return MiniMaxConfig(vocab_size=512, hidden_size=64, num_hidden_layers=layers, num_attention_heads=4,
                             head_dim=16, num_key_value_heads=2, intermediate_size=64, num_local_experts=4,
                             num_experts_per_tok=2, attn_type_list=types, rotary_dim=8, bos_token_id=1,
                             eos_token_id=2, pad_token_id=0, lightning_slope_variant="transformers")
    return MiniMaxConfig(vocab_size=1024, hidden_size=512, num_hidden_layers=layers, num_attention_heads=8,
                         head_dim=64, num_key_value_heads=2, intermediate_size=512, num_local_experts=8,
                         num_experts_per_tok=2, attn_type_list=types, rotary_dim=32, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0, lightning_slope_variant="transformers")


def _lumos_prefill(model: HybridLM, ids: torch.Tensor, steps: int):
    t0 = time.perf_counter()
    cache = model.new_cache(1, capacity=ids.shape[1] + steps + 1)
    logits = model(ids, cache=cache)[:, -1]
    return time.perf_counter() - t0, cache, logits


def _lumos_step(model: HybridLM, state):
    cache, logits = state
    t0 = time.perf_counter()
    logits = model(logits.argmax(-1, keepdim=True), cache=cache)[:, -1]
    return time.perf_counter() - t0, (cache, logits)


def _fast_step(model: HybridLM, state):  # noqa: ARG001 - same signature as the other steps
    decoder, logits = state
    t0 = time.perf_counter()
    logits = decoder.step(logits.argmax(-1))
    return time.perf_counter() - t0, (decoder, logits)


def _tf_cache_kwarg(model) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` (5.2x); support both."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _tf_cache(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _tf_prefill(model, ids: torch.Tensor):
    t0 = time.perf_counter()
    out = model(ids, use_cache=True)
    return time.perf_counter() - t0, _tf_cache(out), (out.logits[:, -1], ids.shape[1])


def _tf_step(model, state):
    # explicit position ids: transformers 5.24 infers them from layer 0's KV length, which stays 0 when layer 0 is a
    # lightning layer (its decode then rotates every new token as position 0)
    cache, (logits, pos) = state
    t0 = time.perf_counter()
    kw = {_tf_cache_kwarg(model): cache}
    out = model(logits.argmax(-1, keepdim=True), use_cache=True, position_ids=torch.tensor([[pos]]), **kw)
    return time.perf_counter() - t0, (_tf_cache(out), (out.logits[:, -1], pos + 1))


def _side_by_side(lumos: HybridLM, tf, ids: torch.Tensor, steps: int) -> dict[str, tuple[float, list[float]]]:
    """Prefill each, then alternate decode steps (lumos eager, lumos compiled, transformers) so all see the same
    machine load. Returns impl -> (prefill seconds, per-step seconds); "compile_s" -> (first compiled step, [])."""
    from lumos.models.fast_decode import FastDecoder

    lp, cache, logits = _lumos_prefill(lumos, ids, steps)
    states = {"lumos": (_lumos_step, (cache, logits))}
    fp, fcache, flogits = _lumos_prefill(lumos, ids, steps + 1)
    decoder = FastDecoder(lumos, fcache, backend="compiled")
    t0 = time.perf_counter()
    flogits = decoder.step(flogits.argmax(-1))  # compiles on the first call of the process
    first = time.perf_counter() - t0
    states["lumos-compiled"] = (_fast_step, (decoder, flogits))
    prefill = {"lumos": lp, "lumos-compiled": fp}
    if tf is not None:
        tp, tcache, tlogits = _tf_prefill(tf, ids)
        states["transformers"] = (_tf_step, (tcache, tlogits))
        prefill["transformers"] = tp
    times: dict[str, list[float]] = {k: [] for k in states}
    for _ in range(steps):
        for impl, (fn, st) in states.items():
            dt, st = fn(lumos if impl != "transformers" else tf, st)
            states[impl] = (fn, st)
            times[impl].append(dt)
    out = {impl: (prefill[impl], times[impl]) for impl in states}
    out["compile_s"] = (first, [])
    return out


def _row(config: str, impl: str, ctx: int, prefill: float, times: list[float]) -> dict:
    ms = 1000 * statistics.median(times)
    return {"config": config, "impl": impl, "context": ctx, "prefill_s": round(prefill, 4),
            "decode_ms_per_token": round(ms, 3), "decode_tokens_per_s": round(1000 / ms, 2)}


@torch.no_grad()
def run(quick: bool, dtype: torch.dtype = torch.float32) -> tuple[list[dict], dict]:
    from transformers import MiniMaxForCausalLM

    contexts = [64, 256] if quick else [1024, 4096, 16384]
    steps = 4 if quick else 12
    torch.manual_seed(0)
    rows: list[dict] = []
    hybrid = HybridLM(_config(False, quick)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(hybrid, tmp, format="transformers")
        tf = MiniMaxForCausalLM.from_pretrained(tmp, dtype=dtype).eval()
    hybrid = hybrid.to(dtype)
    probe = torch.randint(3, hybrid.config.vocab_size, (1, 300))
    parity = float((hybrid(probe).float() - tf(probe).logits.float()).abs().max())
    gen = torch.Generator().manual_seed(1)
    compile_s = None
    for ctx in contexts:
        ids = torch.randint(3, hybrid.config.vocab_size, (1, ctx), generator=gen)
        res = _side_by_side(hybrid, tf, ids, steps)
        first = res.pop("compile_s")[0]
        compile_s = first if compile_s is None else compile_s
        for impl, (pre, times) in res.items():
            rows.append(_row("hybrid-7:1", impl, ctx, pre, times))
            print(rows[-1], flush=True)
    del tf
    linear = HybridLM(_config(True, quick)).eval().to(dtype)
    for ctx in (contexts[0], contexts[-1]):
        ids = torch.randint(3, linear.config.vocab_size, (1, ctx), generator=gen)
        res = _side_by_side(linear, None, ids, steps)
        res.pop("compile_s")
        for impl, (pre, times) in res.items():
            rows.append(_row("all-lightning", impl, ctx, pre, times))
    by = {(r["config"], r["impl"], r["context"]): r for r in rows}
    top, low = contexts[-1], contexts[0]

    def ms(config: str, impl: str, ctx: int) -> float:
        return by[(config, impl, ctx)]["decode_ms_per_token"]

    summary = {
        "dtype": str(dtype).replace("torch.", ""),
        "logits_max_abs_diff_vs_transformers": parity,
        "first_compiled_step_s (compile)": compile_s,
        f"decode_speedup_at_{top} (compiled)": ms("hybrid-7:1", "transformers", top) / ms("hybrid-7:1", "lumos-compiled", top),
        f"decode_speedup_at_{top} (eager)": ms("hybrid-7:1", "transformers", top) / ms("hybrid-7:1", "lumos", top),
        f"prefill_speedup_at_{top}": by[("hybrid-7:1", "transformers", top)]["prefill_s"]
        / by[("hybrid-7:1", "lumos", top)]["prefill_s"],
        f"all_lightning_decode_ratio_{top}_vs_{low} (compiled)": ms("all-lightning", "lumos-compiled", top)
        / ms("all-lightning", "lumos-compiled", low),
        f"all_lightning_decode_ratio_{top}_vs_{low} (eager)": ms("all-lightning", "lumos", top)
        / ms("all-lightning", "lumos", low),
    }
    return rows, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny model, short contexts (seconds)")
    ap.add_argument("--json", type=Path, default=None, help="write the rows (and the summary) as JSON here")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for both libraries (default 1: batch-1 decode is latency-bound, and one "
                    "thread avoids oversubscription on a shared machine)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="weights of both libraries (default float32)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows, summary = run(args.quick, getattr(torch, args.dtype))
    cols = ["config", "impl", "context", "prefill_s", "decode_ms_per_token", "decode_tokens_per_s"]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    for k, v in summary.items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()

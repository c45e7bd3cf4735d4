"""RL benchmark: rollout tokens/s (lumos hybrid cache vs transformers generate, same weights) and RL step time split.

Usage::

    python benchmarks/rl.py [--quick] [--json PATH] [--threads N]

1. Rollout throughput: a MiniMax hybrid model (lightning layers + one softmax layer, MoE) is built with lumos,
   exported with ``save_pretrained(format="transformers")`` and loaded as transformers'
   ``MiniMaxForCausalLM`` (logits checked equal first). Both sample ``length`` new tokens (EOS disabled) for
   the same prompts, side by side in one process; the ratio is lumos tokens/s ÷ transformers tokens/s, for the
   eager decode loop and for ``generate(compile=True)`` (the compiled one-token step; its one-off compile time is
   measured first and reported apart). Target: ≥ 3× at 1K and 4K generated tokens.
2. RL step time split: a few CISPO steps of :class:`lumos.rl.trainer.RLTrainer` on the addition task with
   ``old_logp="recompute"`` so that all three phases are timed: rollout, old log-probs, update.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def _model(quick: bool):
    from lumos.models import HybridLM, MiniMaxConfig

    if quick:
        kw = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, head_dim=16, num_key_value_heads=1,
                  intermediate_size=64, num_local_experts=2, num_experts_per_tok=1, attn_type_list=[0, 1], rotary_dim=8)
    else:
        kw = dict(hidden_size=256, num_hidden_layers=8, num_attention_heads=8, head_dim=32, num_key_value_heads=2,
                  intermediate_size=512, num_local_experts=4, num_experts_per_tok=2, attn_type_list=[0] * 7 + [1],
                  rotary_dim=16)
    torch.manual_seed(0)
    cfg = MiniMaxConfig(lightning_slope_variant="transformers", **kw)
    return HybridLM(cfg).eval()


def rollout_rows(quick: bool, batch: int) -> list[dict]:
    import transformers

    from lumos.models import generate, save_pretrained

    model = _model(quick)
    with tempfile.TemporaryDirectory() as d:
        save_pretrained(model, d, format="transformers")
        hf = transformers.MiniMaxForCausalLM.from_pretrained(d).eval()
    prompts = torch.randint(0, 256, (batch, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = float((model(prompts) - hf(prompts).logits).abs().max())
    rows = []
    gen_kw = dict(do_sample=True, eos_token_id=-1, repetition_truncation=None, seed=0)
    t0 = time.perf_counter()
    generate(model, prompts, max_new_tokens=2, compile=True, **gen_kw)  # compiles the decode step (once per process)
    compile_s = time.perf_counter() - t0
    for length in ((32, 64) if quick else (1024, 4096)):
        t0 = time.perf_counter()
        out = generate(model, prompts, max_new_tokens=length, **gen_kw)
        t_lumos = time.perf_counter() - t0
        t0 = time.perf_counter()
        fast = generate(model, prompts, max_new_tokens=length, compile=True, **gen_kw)
        t_fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        hf_out = hf.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=length,
                             min_new_tokens=length, do_sample=True, pad_token_id=256)
        t_hf = time.perf_counter() - t0
        n_lumos, n_fast = int(out.mask.sum()), int(fast.mask.sum())
        n_hf = int((hf_out.shape[1] - prompts.shape[1]) * batch)
        hf_tok_s = n_hf / t_hf
        rows.append({"bench": "rollout", "gen_length": length, "batch": batch, "params": model.num_parameters(),
                     "lumos_tok_s": n_lumos / t_lumos, "lumos_compiled_tok_s": n_fast / t_fast,
                     "transformers_tok_s": hf_tok_s, "speedup": (n_lumos / t_lumos) / hf_tok_s,
                     "speedup_compiled": (n_fast / t_fast) / hf_tok_s, "compile_s": compile_s,
                     "max_logit_diff": diff})
    return rows


def step_rows(quick: bool) -> list[dict]:
    from lumos.models import tiny_hybrid
    from lumos.rl.config import RLConfig
    from lumos.rl.tasks import get_task
    from lumos.rl.trainer import RLTrainer

    steps = 2 if quick else 5
    cfg = RLConfig(algo="cispo", steps=steps, prompts_per_step=4 if quick else 16, group_size=4 if quick else 8,
                   minibatches=2 if quick else 4, max_new_tokens=8 if quick else 32, eval_every=0,
                   old_logp="recompute")
    model = tiny_hybrid(32 if quick else 64, 2 if quick else 4)
    tr = RLTrainer(model, get_task("addition", digits=2), cfg)
    hist = [tr.rl_step() for _ in range(steps)][1:] or []   # the first step includes one-off warm-up costs
    hist = hist or [tr.history[-1]]
    mean = {k: sum(r[k] for r in hist) / len(hist) for k in ("rollout_s", "old_logp_s", "update_s", "tokens_per_s")}
    total = mean["rollout_s"] + mean["old_logp_s"] + mean["update_s"]
    return [{"bench": "rl_step", "phase": k[:-2], "seconds": mean[k], "share": mean[k] / total,
             "samples": cfg.prompts_per_step * cfg.group_size, "rollout_tok_s": mean["tokens_per_s"]}
            for k in ("rollout_s", "old_logp_s", "update_s")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for this run")
    ap.add_argument("--batch", type=int, default=2, help="rollout batch size (default 2)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = rollout_rows(args.quick, args.batch) + step_rows(args.quick)
    print(f"{'gen length':>10} {'batch':>5} {'lumos tok/s':>12} {'compiled tok/s':>15} {'transformers tok/s':>19} "
          f"{'speedup':>8} {'compiled':>9}")
    for r in rows:
        if r["bench"] == "rollout":
            print(f"{r['gen_length']:>10} {r['batch']:>5} {r['lumos_tok_s']:>12.1f} {r['lumos_compiled_tok_s']:>15.1f} "
                  f"{r['transformers_tok_s']:>19.1f} {r['speedup']:>7.2f}x {r['speedup_compiled']:>8.2f}x")
    roll = [r for r in rows if r["bench"] == "rollout"]
    if roll:
        print(f"(compiled: one-off compile {roll[0]['compile_s']:.1f} s, excluded from its tok/s)")
    print(f"\n{'RL step phase':>14} {'seconds':>9} {'share':>7}")
    for r in rows:
        if r["bench"] == "rl_step":
            print(f"{r['phase']:>14} {r['seconds']:>9.3f} {r['share']:>6.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

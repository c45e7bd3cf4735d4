"""Demo section "CISPO reinforcement learning": warm start a tiny hybrid model, then a short CISPO run."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch

from lumos.models import tiny_hybrid
from lumos.rl.config import RLConfig
from lumos.rl.experiment import plot_curves
from lumos.rl.sft import SFTConfig, sft_warm_start
from lumos.rl.tasks import get_task
from lumos.rl.trainer import RLTrainer
from lumos.studies.demo import DemoContext, demo_section

__all__ = ["rl_demo"]


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """Temporarily use ``n`` intra-op threads (restored on exit).

    The demo's model is tiny (hidden 48): its kernels are far too small to split across threads, and on a
    shared 2-core machine two threads were measured an order of magnitude slower than one.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@demo_section("CISPO reinforcement learning", order=30)
def rl_demo(ctx: DemoContext) -> None:
    q = ctx.quick
    task = get_task("addition", digits=1)
    sft = SFTConfig(steps=4 if q else 300, batch_size=8 if q else 32, lr=3e-3, seed=ctx.seed)
    cfg = RLConfig(algo="cispo", steps=2 if q else 60, prompts_per_step=2 if q else 64, group_size=4 if q else 8,
                   minibatches=2, max_new_tokens=3 if q else 4, lr=2e-4, eval_every=1 if q else 10,
                   eval_problems=8 if q else 100, eval_samples=2 if q else 4, seed=ctx.seed)
    with _threads(1):
        model = tiny_hybrid(32 if q else 48, 2, seed=ctx.seed)
        t0 = time.perf_counter()
        losses = sft_warm_start(model, task, sft, log=lambda **r: ctx.log(phase="sft", **r))
        t_sft = time.perf_counter() - t0
        trainer = RLTrainer(model, task, cfg)
        acc0, greedy0 = trainer.evaluate(), trainer.evaluate(samples=0)
        trainer.history = [{"step": 0, "eval_accuracy": acc0}]
        t0 = time.perf_counter()
        for _ in range(cfg.steps):
            row = trainer.rl_step()
            ctx.log(phase="rl", **{k: v for k, v in row.items() if k != "sample"})
        t_rl = time.perf_counter() - t0
        greedy1 = trainer.evaluate(samples=0)
    hist = trainer.history
    rows = [r for r in hist if "reward" in r]
    first = sum(r["accuracy"] for r in rows[:5]) / len(rows[:5])
    last = sum(r["accuracy"] for r in rows[-5:]) / len(rows[-5:])
    sec = ctx.section
    sec.text(
        f"A {model.num_parameters():,}-parameter MiniMax hybrid model (a lightning-attention layer and a softmax "
        f"layer, MoE MLPs, byte vocabulary) is first fine-tuned for {sft.steps} steps on generated solutions of "
        f"one-digit additions (loss {losses[0]:.2f} → {losses[-1]:.2f}, {t_sft:.0f} s), then trained with CISPO for "
        f"{cfg.steps} steps of {cfg.prompts_per_step} prompts × {cfg.group_size} samples and {cfg.minibatches} "
        f"optimizer steps per rollout batch ({t_rl:.0f} s). Reward 1 for the exact sum, 0.1 for a well-formed "
        f"wrong number. Mean sampled accuracy (temperature 1) over the first five steps {first:.2f}, over the "
        f"last five {last:.2f}. Eval accuracy (avg@{cfg.eval_samples} at temperature 1, the paper's AIME "
        f"metric, on {cfg.eval_problems} problems from a separate seed) {acc0:.2f} before RL, "
        f"{hist[-1].get('eval_accuracy', float('nan')):.2f} after; greedy accuracy {greedy0:.2f} before, "
        f"{greedy1:.2f} after. (One-digit sums have only 100 distinct problems, so the eval set overlaps "
        f"training problems; RL here sharpens what warm start taught.)")
    fig = plot_curves({"cispo": [hist]}, ("accuracy", "eval_accuracy", "entropy", "is_weight_max"))
    ctx.run.save_figure(fig, "rl_cispo")
    sec.figure(fig)
    keep = ("step", "reward", "accuracy", "eval_accuracy", "entropy", "clip_frac", "is_weight_max", "grad_norm")
    every = max(len(rows) // 8, 1)
    sec.table([{k: r[k] for k in keep if k in r} for r in rows if r["step"] % every == 0 or r is rows[-1]],
              caption="CISPO training steps (accuracy: training samples at temperature 1; eval: avg@k).")
    sec.note(f"Example completion at the last step: {rows[-1].get('sample', '')!r}. Full runs, comparisons and "
             "the FLOPs study: `lumos rl train`, `lumos rl compare`, `lumos flops`.")


@demo_section("CISPO mechanism: a rare fork token", order=31)
def rl_study_demo(ctx: DemoContext) -> None:
    """A small :mod:`lumos.studies.rl_study`: 2 seeds, 1 and 16 updates per rollout batch, one shared learning rate
    (full: ``lumos rl study``, tuned per arm on tuning seeds)."""
    from lumos.studies.rl_study import StudyConfig, report_study, same_first_rollouts, study_runs, summarise

    arms = ("cispo", "dapo", "grpo")
    cfg = (StudyConfig.quick(algos=arms, lr_grid={}, tune_seeds=(), eval_seeds=(ctx.seed,), steps=2, sft_steps=20,
                             sft_rare_steps=5, eval_problems=4, eval_samples=2, hidden=16) if ctx.quick else
           StudyConfig(algos=arms, updates=(1, 16), tune_seeds=(), eval_seeds=(ctx.seed, ctx.seed + 1), steps=6,
                       eval_every=3, eval_problems=24, sft_steps=300, sft_rare_steps=60, lr=1e-3))
    t0 = time.perf_counter()
    with _threads(1):
        runs = study_runs(cfg, lambda row: ctx.log(**{"phase": "study", **row}))
    tables = summarise(runs, cfg)
    report_study(ctx.section, ctx.run, cfg, runs, tables, same_first_rollouts(runs, cfg))
    ctx.section.note(f"{time.perf_counter() - t0:.0f} s. Too small to rank the objectives; the measured study "
                     "(lr tuned per arm, held-out seeds) is `lumos rl study` and docs/results/cispo_study.md.")

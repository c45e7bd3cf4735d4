"""The same RL job through TRL and through lumos: lines of user code and seconds per step, side by side in one run.

Usage::

    python benchmarks/trl_vs_lumos.py [--quick] [--json PATH] [--steps N] [--rounds R] [--threads N]

One tiny transformers model (a 2-layer Qwen2, hidden 32, saved with a byte-level BPE tokenizer trained on a few
sentences and a ChatML chat template), one data set (arithmetic prompts as chat messages with an ``answer``
column) and one TRL-style reward function (``contains_answer(prompts, completions, answer, **kw)``) go through

- TRL: ``GRPOTrainer(model=DIR, reward_funcs=[fn], args=GRPOConfig(loss_type="cispo", ...), train_dataset=ds)``
  (TRL's ``epsilon_high`` is CISPO's absolute cap: 5.0 = lumos ``eps_high=4.0``);
- lumos: :func:`lumos.rl.experiment.load_model` (model + its tokenizer) → :class:`~lumos.rl.tasks.dataset.DatasetTask`
  → :class:`~lumos.rl.trainer.RLTrainer` with ``RLConfig(algo="cispo")``.

Both use the same batch (prompts × generations), completion length, learning rate, temperature, one optimizer step
per rollout batch, no KL and no evaluation. "Lines of user code" counts the non-blank, non-comment lines of the two
functions below (what a user writes). Seconds per step: ``--rounds`` rounds, each training TRL then lumos from
the same saved model for 1 + ``--steps`` steps in this process on the same threads; the first step of each
training (set-up, first calls) is left out; the median over all timed steps of a trainer is reported, with the
min and max (on a shared machine the load changes between rounds: compare within a round).
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def make_model_dir(path: Path) -> Path:
    """The 'user's own model' of examples/rl_own_model.py: a tiny Qwen2 with a BPE tokenizer trained there and a
    ChatML chat template, saved with save_pretrained."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from rl_own_model import make_model_dir as build

    return build(path)


def make_rows(n: int = 32) -> list[dict]:
    return [{"prompt": [{"role": "user", "content": f"What is {a} plus {b}?"}], "answer": str(a + b)}
            for a in range(8) for b in range(8)][:n]


def contains_answer(prompts, completions, answer, **kwargs):
    """The reward both trainers call, TRL's way."""
    return [1.0 if a in c[0]["content"] else 0.0 for c, a in zip(completions, answer)]


# ------------------------------------------------------------------------------------------- user code, TRL
def trl_user_code(model_dir, rows, reward, steps, out):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(output_dir=out, loss_type="cispo", epsilon_high=5.0, beta=0.0,
                      num_generations=4, per_device_train_batch_size=16, max_completion_length=8,
                      learning_rate=2e-4, temperature=1.0, max_steps=steps, num_iterations=1,
                      logging_steps=1, report_to="none", save_strategy="no", use_cpu=True, bf16=False)
    trainer = GRPOTrainer(model=model_dir, reward_funcs=[reward], args=args,
                          train_dataset=Dataset.from_list(rows))
    trainer.train()
    return trainer


# ------------------------------------------------------------------------------------------ user code, lumos
def lumos_user_code(model_dir, rows, reward, steps, out):
    from lumos.rl.config import RLConfig
    from lumos.rl.experiment import load_model
    from lumos.rl.rewards import RewardFunctions
    from lumos.rl.tasks import DatasetTask
    from lumos.rl.trainer import RLTrainer

    model, tokenizer = load_model(model_dir)          # the model and its own tokenizer + chat template
    task = DatasetTask(rows, rewards=RewardFunctions([reward]))
    cfg = RLConfig(algo="cispo", steps=steps, prompts_per_step=4, group_size=4, minibatches=1,
                   max_new_tokens=8, lr=2e-4, temperature=1.0, eval_every=0)
    trainer = RLTrainer(model, task, cfg, tokenizer=tokenizer)
    trainer.train()
    return trainer


def user_lines(fn) -> int:
    body = inspect.getsource(fn).splitlines()[1:]        # the def line excluded
    return sum(1 for ln in body if ln.strip() and not ln.strip().startswith("#"))


class _StepClock:
    """Time stamps at the end of every step; the differences are the seconds of steps 2, 3, ... (step 1, with its
    one-off set-up, is the warm-up and left out)."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    def tick(self, *_a, **_k) -> None:
        self.marks.append(time.perf_counter())

    def seconds(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


def time_trl(model_dir: str, rows: list[dict], steps: int, out: str) -> list[float]:
    import trl
    from transformers import TrainerCallback

    clock = _StepClock()

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            clock.tick()

    original = trl.GRPOTrainer.__init__

    def init(self, *a, **kw):                   # the clock is added without changing the user's code
        original(self, *a, **kw)
        self.add_callback(Clock())

    trl.GRPOTrainer.__init__ = init
    try:
        trl_user_code(model_dir, rows, contains_answer, steps, out)
    finally:
        trl.GRPOTrainer.__init__ = original
    return clock.seconds()


def time_lumos(model_dir: str, rows: list[dict], steps: int) -> list[float]:
    from lumos.rl.trainer import RLTrainer

    clock = _StepClock()
    original = RLTrainer.train

    def train(self, stop_after=None, callback=None):
        return original(self, stop_after, clock.tick)

    RLTrainer.train = train
    try:
        lumos_user_code(model_dir, rows, contains_answer, steps, None)
    finally:
        RLTrainer.train = original
    return clock.seconds()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 timed steps (smoke test size)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps after one warm-up step (default 5; quick 2)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--rounds", type=int, default=None, help="alternating TRL/lumos rounds (default 3; quick 1)")
    ap.add_argument("--json", default=None, help="write the rows here")
    args = ap.parse_args()
    steps = args.steps or (2 if args.quick else 5)
    rounds = args.rounds or (1 if args.quick else 3)
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(make_model_dir(Path(tmp) / "my-model"))
        rows = make_rows()
        trl_s: list[float] = []
        lumos_s: list[float] = []
        per_round = []
        for r in range(rounds):
            t = time_trl(model_dir, rows, steps + 1, str(Path(tmp) / f"trl{r}"))
            lu = time_lumos(model_dir, rows, steps + 1)
            trl_s += t
            lumos_s += lu
            per_round.append(statistics.median(lu) / statistics.median(t))
    out = [
        {"trainer": "TRL GRPOTrainer(loss_type='cispo')", "user_lines": user_lines(trl_user_code),
         "seconds_per_step": statistics.median(trl_s), "min_s": min(trl_s), "max_s": max(trl_s),
         "steps_timed": len(trl_s)},
        {"trainer": "lumos RLTrainer(algo='cispo')", "user_lines": user_lines(lumos_user_code),
         "seconds_per_step": statistics.median(lumos_s), "min_s": min(lumos_s), "max_s": max(lumos_s),
         "steps_timed": len(lumos_s), "ratio_per_round": per_round},
    ]
    print(f"{'trainer':40s} {'user lines':>10s} {'s/step (median)':>16s} {'min':>7s} {'max':>7s} {'steps':>6s}")
    for r in out:
        print(f"{r['trainer']:40s} {r['user_lines']:>10d} {r['seconds_per_step']:>16.3f} {r['min_s']:>7.3f} "
              f"{r['max_s']:>7.3f} {r['steps_timed']:>6d}")
    print("lumos / TRL per round (medians): " + ", ".join(f"{x:.2f}" for x in per_round))
    print(f"lumos / TRL seconds per step: {out[1]['seconds_per_step'] / out[0]['seconds_per_step']:.2f} "
          f"(16 samples of ≤ 8 tokens per step, {args.threads} torch threads, CPU)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""The learning-rate schedule of every lumos trainer (RL and the SFT warm start): linear warmup, then constant,
cosine or linear decay to ``min_ratio · lr``.

For step ``s`` (0-based, the step about to be taken) of ``total_steps``, with ``W = warmup_steps``::

    s <  W:  lr · (s + 1) / W                                   (never 0: the first step already moves)
    s >= W:  lr · (m + (1 − m) · shape(f)),   f = min((s − W) / max(total_steps − W, 1), 1)
             shape = 1 (constant), ½(1 + cos πf) (cosine), 1 − f (linear);  m = min_ratio

After warmup this is transformers' ``get_cosine_schedule_with_warmup`` (and ``..._linear_...``) with the floor
``min_ratio``; during warmup it is one step ahead of it (transformers' first step has lr 0).
"""

from __future__ import annotations

import math

from lumos.core.validation import Problems, check_choice, check_float, check_nonneg_int, check_probability

__all__ = ["SCHEDULES", "warmup_decay_lr"]

SCHEDULES = ("constant", "cosine", "linear")


def warmup_decay_lr(step: int, *, lr: float, total_steps: int, warmup_steps: int = 0, schedule: str = "cosine",
                    min_ratio: float = 0.0) -> float:
    """Learning rate of step ``step`` (0-based) — see the module docstring for the formula."""
    p = Problems("warmup_decay_lr")
    p.check(check_nonneg_int, step, "step")
    p.check(check_nonneg_int, total_steps, "total_steps")
    p.check(check_nonneg_int, warmup_steps, "warmup_steps")
    p.check(check_float, lr, "lr", 0.0)
    p.check(check_choice, schedule, "schedule", SCHEDULES)
    p.check(check_probability, min_ratio, "min_ratio")
    p.raise_if_any()
    if warmup_steps and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    frac = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    shape = 0.5 * (1 + math.cos(math.pi * frac)) if schedule == "cosine" else 1 - frac
    return lr * (min_ratio + (1 - min_ratio) * shape)

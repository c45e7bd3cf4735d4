"""core/schedule.py: one warmup + decay schedule, checked against transformers' schedulers (the oracle)."""

import math

import pytest
import torch

from lumos.core.errors import LumosError
from lumos.core.schedule import warmup_decay_lr


def _hf(kind, warmup, total):
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    make = get_cosine_schedule_with_warmup if kind == "cosine" else get_linear_schedule_with_warmup
    sched = make(opt, num_warmup_steps=warmup, num_training_steps=total)
    return [sched.lr_lambdas[0](s) for s in range(total + 1)]


@pytest.mark.parametrize("kind", ["cosine", "linear"])
@pytest.mark.parametrize("warmup,total", [(0, 10), (3, 10), (5, 7), (1, 2)])
def test_matches_transformers_after_warmup_and_one_step_ahead_during_it(kind, warmup, total):
    hf = _hf(kind, warmup, total)
    for s in range(total + 1):
        ours = warmup_decay_lr(s, lr=2.0, total_steps=total, warmup_steps=warmup, schedule=kind)
        want = 2.0 * (hf[s + 1] if s < warmup else hf[s])  # lumos' first warmup step is transformers' second
        assert ours == pytest.approx(want, abs=1e-12), (s, ours, want)


def test_hand_values_floor_and_constant():
    # warmup 2 of 10 steps, cosine to 0.2·lr: step 0 → lr/2, step 2 → peak, mid-decay (step 6) → (0.2 + 0.8·½)·lr
    f = lambda s: warmup_decay_lr(s, lr=1.0, total_steps=10, warmup_steps=2, min_ratio=0.2)  # noqa: E731
    assert f(0) == 0.5 and f(1) == 1.0 and f(2) == 1.0
    assert f(6) == pytest.approx(0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(10) == pytest.approx(0.2) and f(50) == pytest.approx(0.2)  # held at the floor past the end
    assert warmup_decay_lr(7, lr=0.3, total_steps=10, schedule="constant") == 0.3


def test_rl_and_sft_share_it():
    from lumos.rl.config import RLConfig
    from lumos.rl.trainer import lr_at

    cfg = RLConfig(steps=12, lr=0.5, warmup_steps=3, lr_schedule="cosine", lr_min_ratio=0.1)
    for s in range(12):
        assert lr_at(cfg, s) == warmup_decay_lr(s, lr=0.5, total_steps=12, warmup_steps=3, min_ratio=0.1)


def test_sft_applies_the_schedule_to_its_optimizer(monkeypatch):
    """The SFT warm start sets each step's lr from warmup_decay_lr (warmup, cosine to 0)."""
    from lumos.models import tiny_hybrid
    from lumos.rl.sft import SFTConfig, sft_warm_start
    from lumos.rl.tasks import get_task

    seen = []
    real = torch.optim.AdamW.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return real(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    sft_warm_start(tiny_hybrid(16, 1), get_task("addition", digits=1), SFTConfig(steps=5, batch_size=2, lr=1.0,
                                                                                  warmup_steps=2))
    assert seen == pytest.approx([warmup_decay_lr(s, lr=1.0, total_steps=5, warmup_steps=2) for s in range(5)])


def test_bad_arguments_in_one_message():
    with pytest.raises(LumosError, match="3 problems in warmup_decay_lr: .*'step'.*'schedule'.*'min_ratio'"):
        warmup_decay_lr(-1, lr=1.0, total_steps=3, schedule="cos", min_ratio=2.0)

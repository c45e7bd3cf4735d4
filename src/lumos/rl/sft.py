"""Warm start: supervised fine-tuning on a task's demonstrations, so RL starts above zero accuracy.

Sequences are ``BOS + prompt + demonstration + EOS``; the loss is the mean negative log-likelihood of the
demonstration and EOS tokens (the prompt is not trained on). The same forward as RL is used
(:meth:`lumos.rl.policy.Policy.token_logprobs`), so what SFT teaches is exactly what RL then samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lumos.core.errors import LumosError
from lumos.core.progress import track
from lumos.core.schedule import warmup_decay_lr
from lumos.core.validation import NONNEG, NONNEG_INT, POSITIVE, POSITIVE_INT, Interval, Problems, constraint
from lumos.distributed.process_group import all_reduce_sum
from lumos.distributed.rl_layout import layout
from lumos.models.tokenizer import encode_prompt, resolve_tokenizer
from lumos.rl.policy import Policy, Rollout, left_pad, make_policy
from lumos.rl.tasks.base import Problem, Task

__all__ = ["SFTConfig", "sft_warm_start", "demonstration_batch"]


@dataclass
class SFTConfig:
    """Warm-start options."""

    steps: int = field(default=300, metadata=constraint(POSITIVE_INT))
    batch_size: int = field(default=32, metadata=constraint(POSITIVE_INT))
    lr: float = field(default=3e-3, metadata=constraint(POSITIVE, help="peak learning rate"))
    warmup_steps: int = field(default=20, metadata=constraint(NONNEG_INT, help="linear warmup steps, then cosine "
                                                              "decay to 0 (lumos.core.schedule)"))
    weight_decay: float = field(default=0.0, metadata=constraint(NONNEG))
    grad_clip: float = field(default=1.0, metadata=constraint(NONNEG, help="max gradient norm (0 = no clipping)"))
    seed: int = field(default=0, metadata=constraint(Interval(int, None, None)))

    def __post_init__(self) -> None:
        p = Problems("SFTConfig")
        p.fields(self)
        p.raise_if_any()


def demonstration_batch(task: Task, problems: list[Problem], tokenizer: Any, policy: Policy) -> Rollout:
    """A :class:`Rollout` whose responses are the task's demonstrations followed by EOS; prompts are encoded as the
    trainer encodes them (:func:`lumos.models.tokenizer.encode_prompt`: chat template where one is used)."""
    try:
        demos = [tokenizer.encode(task.demonstration(p)) + [policy.eos_token_id] for p in problems]
    except NotImplementedError as exc:
        raise LumosError(f"Task {task.name!r} has no demonstrations, so it cannot be warm-started ({exc}).") from None
    p_ids, p_mask = left_pad([encode_prompt(tokenizer, p.prompt) for p in problems], policy.pad_token_id)
    T = max(len(d) for d in demos)
    r_ids = torch.full((len(demos), T), policy.pad_token_id, dtype=torch.long)
    r_mask = torch.zeros(len(demos), T, dtype=torch.bool)
    for i, d in enumerate(demos):
        r_ids[i, :len(d)] = torch.tensor(d)
        r_mask[i, :len(d)] = True
    return Rollout(p_ids, p_mask, r_ids, r_mask, torch.zeros(len(demos), T), ["eos"] * len(demos))


def _rank_share(sharded: bool, batch_size: int) -> torch.Tensor | None:
    """Rows of each batch this rank trains on when the model is sharded (FSDP2), else None (the whole batch)."""
    from lumos.distributed import process_group as dist

    if not sharded:
        return None
    world, rank = dist.world_size(), dist.rank()
    if batch_size % world:
        raise LumosError(f"SFT batch_size ({batch_size}) must be divisible by the number of processes ({world}) "
                         "when the model is sharded.")
    n = batch_size // world
    return torch.arange(rank * n, (rank + 1) * n)


def sft_warm_start(model: nn.Module | Policy, task: Task, config: SFTConfig | None = None, tokenizer: Any = None,
                   log: Any = None) -> list[float]:
    """Fine-tune ``model`` in place on ``task`` demonstrations; returns the loss per step.

    Problems come from ``task.generate(batch_size, seed=(seed, step))``, disjoint in seed from RL's problem
    stream. ``log(step=, loss=)`` is called every 10 steps if given. ``tokenizer``: the model's (see
    :class:`~lumos.rl.trainer.RLTrainer`; None only for lumos's byte-vocabulary models). A model sharded with FSDP2
    (:func:`lumos.distributed.parallel.shard_model`, ``grad_reduce="sum"``) trains each rank on its share of every
    batch, with the loss normalised by the whole batch's token count: the same steps as one process.
    """
    cfg = config or SFTConfig()
    tokenizer = resolve_tokenizer(tokenizer, model)
    policy = make_policy(model, getattr(tokenizer, "eos_token_id", None), getattr(tokenizer, "pad_token_id", None))
    parallel = layout(policy)
    share = _rank_share(parallel.sharded, cfg.batch_size)
    params = [p for p in policy.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    losses: list[float] = []
    policy.model.train()
    for step in track(range(cfg.steps), description="SFT warm start"):
        for g in opt.param_groups:  # the RL trainer's schedule: warmup, then cosine to 0
            g["lr"] = warmup_decay_lr(step, lr=cfg.lr, total_steps=cfg.steps, warmup_steps=cfg.warmup_steps)
        problems = task.generate(cfg.batch_size, seed=-(cfg.seed * 100_003 + step + 1))
        batch = demonstration_batch(task, problems, tokenizer, policy)
        logp, _ = policy.token_logprobs(batch, temperature=1.0, rows=share)
        mask = batch.response_mask.float().to(logp.device)
        loss = -(logp * mask[share if share is not None else slice(None)]).sum() / mask.sum()
        aux = parallel.aux_loss()
        if aux is not None:
            loss = loss + aux
        opt.zero_grad(set_to_none=True)
        loss.backward()              # a sharded model: FSDP2 sums the ranks' gradients = the full batch's
        if cfg.grad_clip > 0:
            parallel.clip(params, cfg.grad_clip)
        opt.step()
        losses.append(float(loss.detach()) if share is None else float(all_reduce_sum(loss.detach().double())))
        if log is not None and (step % 10 == 0 or step == cfg.steps - 1):
            log(step=step, loss=losses[-1])
    policy.model.eval()
    return losses

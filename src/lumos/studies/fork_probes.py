"""The fork-token instruments of ``lumos rl study`` (:mod:`lumos.studies.rl_study`): the two-phase warm start that
makes the fork token rare but valuable, the exact fork probability on probe contexts, the per-minibatch clipping
probe and the evaluation split by branch."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch
from torch import nn

from lumos.rl.policy import Policy, Rollout, left_pad
from lumos.rl.sft import SFTConfig, sft_warm_start
from lumos.rl.tasks.base import Problem
from lumos.rl.tasks.fork import GuessCheckTask
from lumos.rl.trainer import RLTrainer, decode_responses, encode_prompts

__all__ = ["fork_warm_start", "fork_probability", "ForkClipProbe", "evaluate_forks"]


# ------------------------------------------------------------------------------------------------ warm start


def fork_warm_start(model: nn.Module, cfg: Any, seed: int) -> dict[str, float]:
    """Two-phase SFT: every demonstration forks (learn the verification), then a share ``demo_fork_rate``
    does (make the fork rare). ``cfg`` is a :class:`~lumos.studies.rl_study.StudyConfig` (``max_operand``,
    ``demo_fork_rate``, ``sft_steps``, ``sft_rare_steps``). Returns the last loss of each phase."""
    teach = GuessCheckTask(cfg.max_operand, demo_fork_rate=1.0)
    rare = GuessCheckTask(cfg.max_operand, demo_fork_rate=cfg.demo_fork_rate)
    l1 = sft_warm_start(model, teach, SFTConfig(steps=cfg.sft_steps, batch_size=32, lr=6e-3, seed=seed))
    l2 = sft_warm_start(model, rare, SFTConfig(steps=cfg.sft_rare_steps, batch_size=32, lr=2e-3, warmup_steps=1,
                                               seed=seed + 10_007))
    return {"sft_loss_teach": l1[-1], "sft_loss_rare": l2[-1]}


# ------------------------------------------------------------------------------------------------ probes


@torch.no_grad()
def fork_probability(policy: Policy, task: Any, problems: list[Problem], tokenizer: Any,
                     temperature: float = 1.0) -> float:
    """Mean exact π(fork | prompt, guess) over ``problems`` of ``task`` (a :class:`GuessCheckTask`), each with its
    own guess (``meta["guess"]``).

    The context is what the policy sees at the fork position: BOS + prompt + guess; the probability is that
    of the fork token next (softmax of logits / temperature, as in training).
    """
    fork_id = tokenizer.encode(task.fork_token)
    p_ids, p_mask = left_pad([tokenizer.encode(str(p.prompt), add_bos=True) for p in problems], policy.pad_token_id)
    resp = [tokenizer.encode(str(p.meta["guess"])) + fork_id for p in problems]
    r_ids, r_mask = left_pad([r[::-1] for r in resp], policy.pad_token_id)     # right-pad via reversal
    r_ids, r_mask = r_ids.flip(1), r_mask.flip(1).bool()
    ro = Rollout(p_ids, p_mask, r_ids, r_mask, torch.zeros(r_ids.shape), ["eos"] * len(problems))
    policy.model.eval()
    logp, _ = policy.token_logprobs(ro, temperature)
    last = r_mask.sum(1) - 1
    return float(logp[torch.arange(len(problems)), last].exp().mean())


class ForkClipProbe:
    """Per-minibatch clipping statistics of one token, for :attr:`RLTrainer.token_stats`.

    For the occurrences of ``token_id`` in the minibatch it reports (as counts, so that the trainer's mean
    over minibatches keeps their ratios): ``fork_n`` occurrences; ``fork_clipped_n`` those whose gradient the
    objective clips (among the ``fork_live_n`` with a non-zero gradient, i.e. Â ≠ 0) — zero for PPO-clip (DAPO, GRPO), capped weight for CISPO; ``fork_grad_full`` and
    ``fork_grad_kept``, Σ|∂loss/∂log π| over them without and with clipping (the unclipped gradient is the
    importance-weighted policy gradient r·Â/N); ``fork_ratio_max``; ``fork_seqs`` (sequences that contain
    the token) and ``seqs``. The gradients come from the trainer's own objective (``trainer.loss_fn`` with
    ``trainer.cfg.loss_kwargs()``), once as configured and once with the clip range opened to ±1e9.
    The first minibatch tokens of each step are hashed into :attr:`digests` (paired-run check).
    """

    def __init__(self, trainer: RLTrainer, token_id: int) -> None:
        self.trainer, self.token_id = trainer, int(token_id)
        self.digests: dict[int, str] = {}
        self._hash: Any = None
        self._hash_step = -1

    def _grad(self, logp: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
              kw: dict[str, Any]) -> torch.Tensor:
        x = logp.detach().double().requires_grad_()
        loss, _ = self.trainer.loss_fn(x, old.double(), adv.double(), mask.double(), normalizer=1.0, **kw)
        (g,) = torch.autograd.grad(loss, x)
        return g.abs()

    def __call__(self, ids: torch.Tensor, logp: torch.Tensor, old: torch.Tensor, adv: torch.Tensor,
                 mask: torch.Tensor) -> dict[str, float]:
        step = self.trainer.step
        if step != self._hash_step:
            self._hash, self._hash_step = hashlib.sha256(), step
        self._hash.update(ids.numpy().tobytes())
        self.digests[step] = self._hash.hexdigest()[:16]
        at = (ids == self.token_id) & mask.bool()
        out = {"fork_n": float(at.sum()), "fork_seqs": float(at.any(1).sum()), "seqs": float(ids.shape[0]),
               "fork_live_n": 0.0, "fork_clipped_n": 0.0, "fork_grad_full": 0.0, "fork_grad_kept": 0.0, "fork_ratio_max": 0.0}
        if not bool(at.any()):
            return out
        kw = self.trainer.cfg.loss_kwargs()
        if "beta" in kw:                  # the KL term is not clipping: the probe looks at the policy gradient
            kw["beta"] = 0.0
        open_kw = {**kw, "eps_high": 1e9, **({"eps_low": 1e9} if kw.get("eps_low") is not None else {})}
        kept, full = self._grad(logp, old, adv, mask, kw), self._grad(logp, old, adv, mask, open_kw)
        ratio = (logp.double() - old.double()).exp()
        out.update(fork_live_n=float((full[at] > 0).sum()), fork_grad_full=float(full[at].sum()), fork_grad_kept=float(kept[at].sum()),
                   fork_clipped_n=float((kept[at] < full[at] * (1 - 1e-9)).sum()),
                   fork_ratio_max=float(ratio[at].max()))
        return out


@torch.no_grad()
def evaluate_forks(trainer: RLTrainer, problems: list[Problem], samples: int, seed: int) -> dict[str, float]:
    """avg@``samples`` accuracy at the training temperature, with the fork rate and accuracy by branch."""
    task, policy, tok = trainer.task, trainer.policy, trainer.tokenizer
    rows = [p for p in problems for _ in range(samples)]
    ids, mask = encode_prompts(tok, rows, policy.pad_token_id)
    gen = torch.Generator().manual_seed(seed)
    policy.model.eval()
    ro = policy.generate(ids, mask, max_new_tokens=trainer.cfg.max_new_tokens, temperature=trainer.cfg.temperature,
                         generators=[gen] * len(rows))
    rewards = task.score(rows, decode_responses(tok, ro, policy.eos_token_id))
    fork = [bool(r.info.get("fork")) for r in rewards]
    n_f = sum(fork)

    def acc(sel: list[bool]) -> float:
        hits = [r.correct for r, s in zip(rewards, sel) if s]
        return sum(hits) / len(hits) if hits else math.nan

    return {"eval_accuracy": sum(r.correct for r in rewards) / len(rows), "eval_fork_rate": n_f / len(rows),
            "eval_acc_fork": acc(fork), "eval_acc_direct": acc([not f for f in fork]),
            "fork_prob": fork_probability(policy, task, problems, tok, trainer.cfg.temperature)}

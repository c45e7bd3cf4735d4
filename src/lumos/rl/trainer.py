"""``RLTrainer``: rollouts → rewards → group advantages → several optimizer steps per rollout batch.

One RL step ``k``:

1. ``prompts_per_step`` problems from ``task.generate(n, seed=f(seed, k, round))`` (the data position is the
   step and the generation round); under ``torch.distributed`` each process takes a contiguous share of them.
2. ``group_size`` samples per prompt with sampling generators seeded by (seed, k, round, prompt, sample), so
   the samples do not depend on how prompts are spread over processes; the sampler's log-probs are recorded.
3. Rewards (+ DAPO overlong shaping). DAPO dynamic sampling drops the groups whose rewards are all equal and
   refills: further rounds of ``prompts_per_step`` fresh problems (round r of step k has its own seed) are
   generated until ``prompts_per_step`` groups with reward spread are collected (the surplus of the last
   round is discarded) or ``dynamic_sampling_max_rounds`` rounds were generated (then the step trains on the
   groups it has). Every process all-reduces the per-process count of groups with spread, so all take the
   same decision, and the batch is the first groups in (round, process, prompt) order — the single-process
   order. Everything is a function of (seed, k, round) and the weights, so resume needs no extra state.
   Then group advantages on the collected batch.
4. Old log-probs: the sampler's (default) or a no-grad training forward (``old_logp="recompute"``).
5. ``minibatches`` optimizer steps: minibatch ``m`` holds the samples whose global index i satisfies
   i mod M = m. Losses are normalised by the *global* token (or sequence) count of the minibatch and the
   gradients are summed over processes, so N processes compute exactly the single-process update.
   A non-finite loss or gradient norm skips that optimizer step with a warning and is counted.
   A minibatch whose advantages are all exactly zero (every group in it had equal rewards) has a zero policy
   gradient; it still takes an optimizer step on the remaining terms (the MoE load-balancing loss, GRPO's KL),
   which AdamW with eps = 1e-15 normalises to a full-size step. ``metrics.jsonl`` counts such minibatches
   (``zero_advantage_minibatches``); ``RLConfig.skip_zero_advantage_steps`` skips their steps
   (``zero_advantage_skips``; off by default, as the paper's recipe has no such rule).

Metrics go to ``metrics.jsonl`` (one row per RL step); checkpoints are atomic (:mod:`lumos.rl.checkpoint`)
and resuming continues bit-identically.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from torch import nn

from lumos.core.errors import LumosError
from lumos.core.io import atomic_write_text, read_jsonl, to_json
from lumos.core.progress import track
from lumos.core.rundir import RunDir
from lumos.core.schedule import warmup_decay_lr
from lumos.distributed import process_group as dist
from lumos.distributed import rl_layout
from lumos.distributed.checkpoint import is_distributed_checkpoint, load_distributed, save_distributed
from lumos.models.tokenizer import encode_prompt, render_prompt, resolve_tokenizer
from lumos.rl.advantages import (
    dynamic_sampling_mask,
    group_advantages,
    group_advantages_skipping_nan,
    overlong_penalty,
)
from lumos.rl.checkpoint import is_peft_model, latest_checkpoint, load_checkpoint, save_checkpoint
from lumos.rl.config import RLConfig
from lumos.rl.policy import (
    AdapterDisabledPolicy,
    HFPolicy,
    HybridPolicy,
    Policy,
    Rollout,
    check_context,
    context_limit,
    left_pad,
    make_policy,
)
from lumos.rl.tasks.base import Problem, Reward, Task

__all__ = ["RLTrainer", "lr_at", "encode_prompts", "decode_responses"]

_MIX = 1_000_003
_EVAL_SEED = 10**9 + 7
_REFILL_TAG = 7919          # separates the problem seeds of refill rounds from those of first rounds


class _ScoresCompletionIds(Protocol):
    """A task whose ``takes_completion_ids`` is true: its ``score`` also takes the sampled token ids."""

    def score(self, problems: Sequence[Problem], completions: Sequence[str], *,
              completion_ids: Sequence[Sequence[int]]) -> list[Reward]: ...


def lr_at(cfg: RLConfig, step: int) -> float:
    """Learning rate of RL step ``step`` (0-based): :func:`lumos.core.schedule.warmup_decay_lr` with the config's
    lr, steps, warmup_steps, lr_schedule and lr_min_ratio."""
    return warmup_decay_lr(step, lr=cfg.lr, total_steps=cfg.steps, warmup_steps=cfg.warmup_steps,
                           schedule=cfg.lr_schedule, min_ratio=cfg.lr_min_ratio)


def encode_prompts(tokenizer: Any, problems: list[Problem], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt ids (:func:`lumos.models.tokenizer.encode_prompt`: the chat template where the tokenizer uses one,
    else BOS + text), left-padded: (N, P) ids and mask. Identical prompts are encoded once."""
    cache: dict[int, list[int]] = {}
    seqs = []
    for p in problems:
        if id(p) not in cache:
            cache[id(p)] = encode_prompt(tokenizer, p.prompt)
        seqs.append(cache[id(p)])
    return left_pad(seqs, pad_id)


def decode_responses(tokenizer: Any, rollout: Rollout, eos_id: int) -> list[str]:
    out = []
    for ids, m in zip(rollout.response_ids, rollout.response_mask):
        toks = [int(t) for t in ids[m] if int(t) != eos_id]
        out.append(tokenizer.decode(toks))
    return out


def _cat_rollouts(parts: list[tuple[Rollout, torch.Tensor]], pad_id: int) -> Rollout:
    """Rows ``idx`` of each rollout, concatenated (prompts re-left-padded, responses re-right-padded)."""
    Pw = max(ro.prompt_ids.shape[1] for ro, _ in parts)
    Tw = max(ro.response_ids.shape[1] for ro, _ in parts)
    n = sum(int(idx.numel()) for _, idx in parts)
    out = Rollout(torch.full((n, Pw), pad_id, dtype=torch.long), torch.zeros(n, Pw, dtype=torch.long),
                  torch.full((n, Tw), pad_id, dtype=torch.long), torch.zeros(n, Tw, dtype=torch.bool),
                  torch.zeros(n, Tw, dtype=parts[0][0].logprobs.dtype), [])
    i = 0
    for ro, idx in parts:
        k, p, t = int(idx.numel()), ro.prompt_ids.shape[1], ro.response_ids.shape[1]
        out.prompt_ids[i:i + k, Pw - p:] = ro.prompt_ids[idx]
        out.prompt_mask[i:i + k, Pw - p:] = ro.prompt_mask[idx]
        out.response_ids[i:i + k, :t] = ro.response_ids[idx]
        out.response_mask[i:i + k, :t] = ro.response_mask[idx]
        out.logprobs[i:i + k, :t] = ro.logprobs[idx]
        out.finish_reasons.extend(ro.finish_reasons[j] for j in idx.tolist())
        i += k
    return out


class RLTrainer:
    """Train ``model`` on ``task`` with ``config.algo`` (cispo, dapo, grpo).

    Args:
        model: a lumos ``HybridLM`` or a transformers causal LM (or a ready :class:`Policy`).
        task: a :class:`~lumos.rl.tasks.base.Task`.
        config: :class:`RLConfig`.
        tokenizer: the model's tokenizer: a :class:`~lumos.models.tokenizer.TransformersTokenizer`, a transformers
            tokenizer (wrapped in one, chat template on), or anything with ``encode(text, add_bos=)`` /
            ``decode(ids)``. ``None`` only for models with lumos's byte vocabulary (259 tokens), which use
            :class:`~lumos.models.tokenizer.ByteTokenizer`; any other model without a tokenizer is an error.
            The policy's EOS and pad ids are the tokenizer's.
        run: the run directory for metrics, plots and checkpoints (None: nothing is written).

    Example::

        trainer = RLTrainer(model, get_task("addition"), RLConfig(algo="cispo", steps=20), run=run)
        history = trainer.train()
    """

    def __init__(self, model: nn.Module | Policy, task: Task, config: RLConfig, tokenizer: Any = None,
                 run: RunDir | None = None) -> None:
        self.cfg = config
        self.task = task
        self.tokenizer = resolve_tokenizer(tokenizer, model)
        self.policy = make_policy(model, getattr(self.tokenizer, "eos_token_id", None),
                                  getattr(self.tokenizer, "pad_token_id", None))
        if isinstance(self.policy, HybridPolicy):
            self.policy.compile = config.compile_rollouts
        self.model = self.policy.model
        self._context_limit = context_limit(self.model)   # the model's declared length, read once
        self.run = run
        self.loss_fn = config.objective.fn
        self._loss_kw = config.loss_kwargs()   # resolved once, like loss_fn, not per minibatch
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise LumosError("The model has no trainable parameters (all requires_grad=False).")
        self.params = params
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, betas=(config.adam_beta1, config.adam_beta2),
                                           eps=config.adam_eps, weight_decay=config.weight_decay)
        self.layout = rl_layout.layout(self.policy)       # replicated or FSDP2 / expert parallel: lumos.distributed.rl_layout
        self._updates = 0
        self.ref_model = None
        self.ref_policy: Policy | None = None
        if config.beta > 0 and is_peft_model(self.model):   # the base model: the adapter switched off
            self.ref_policy = AdapterDisabledPolicy(self.policy)
        elif config.beta > 0:
            self.ref_model = self.layout.reference_model().eval().requires_grad_(False)
            self.ref_policy = make_policy(self.ref_model, self.policy.eos_token_id, self.policy.pad_token_id)
        self.step = 0
        self.skipped_steps = 0
        self.history: list[dict[str, Any]] = []
        self.world, self.rank = dist.world_size(), dist.rank()
        if config.prompts_per_step % self.world:
            raise LumosError(f"prompts_per_step ({config.prompts_per_step}) must be divisible by the number of "
                             f"processes ({self.world}).")
        self._eval_problems: list[Problem] | None = None
        if config.eval_every:       # a task without held-out problems fails here, before any work
            self._eval_problems = task.held_out(config.eval_problems, seed=_EVAL_SEED + config.seed)
        self._warned_short = False
        #: optional per-minibatch probe ``f(response_ids, logp, old_logp, advantages, mask) -> {name: float}``
        #: (the minibatch's rows, logp detached); its values are averaged into the step's metrics like the
        #: loss statistics. Used by :mod:`lumos.studies.rl_study` to follow one token's clipping.
        self.token_stats: Callable[..., dict[str, float]] | None = None

    @property
    def eval_problems(self) -> list[Problem]:
        """The held-out problems :meth:`evaluate` uses (``task.held_out``; never training prompts)."""
        if self._eval_problems is None:
            self._eval_problems = self.task.held_out(self.cfg.eval_problems, seed=_EVAL_SEED + self.cfg.seed)
        return self._eval_problems

    def _sampling(self) -> dict[str, Any]:
        return {"temperature": self.cfg.temperature, "top_k": self.cfg.top_k, "top_p": self.cfg.top_p}

    def _score(self, rows: list[Problem], ro: Rollout) -> tuple[list[str], list[Any]]:
        """Decoded completions and the task's rewards (with the token ids for tasks that take them)."""
        texts = decode_responses(self.tokenizer, ro, self.policy.eos_token_id)
        if getattr(self.task, "takes_completion_ids", False):
            ids = [[int(t) for t in r[m]] for r, m in zip(ro.response_ids, ro.response_mask)]
            return texts, cast(_ScoresCompletionIds, self.task).score(rows, texts, completion_ids=ids)
        return texts, self.task.score(rows, texts)

    # ---------------------------------------------------------------------------------------------- rollouts
    def _generation_policy(self) -> Policy:
        """The policy that samples: itself, or for a sharded model an unsharded copy refreshed after updates."""
        return self.layout.rollout_policy(self._updates, compile=self.cfg.compile_rollouts)

    def _problem_seed(self, step: int, rnd: int) -> int:
        """Seed of the problems of round ``rnd`` of step ``step`` (round 0: the seed used without refill)."""
        base = self.cfg.seed * _MIX + step
        return base if rnd == 0 else (base * _MIX + rnd) * _MIX + _REFILL_TAG

    def _generators(self, step: int, groups: range) -> list[torch.Generator]:
        G = self.cfg.group_size
        gens: list[torch.Generator] = []
        per_row = isinstance(self.policy, HFPolicy)
        for g in groups:
            base = ((self.cfg.seed * _MIX + step) * _MIX + g) % (1 << 56)
            if per_row:
                gens.extend(torch.Generator().manual_seed(base * 64 + j) for j in range(G))
            else:  # lumos.models.generate draws for a whole group from one generator
                gen = torch.Generator().manual_seed(base * 64)
                gens.extend([gen] * G)
        return gens

    def _encode(self, rows: list[Problem]) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`encode_prompts` of ``rows``; the longest must leave room for ``max_new_tokens`` in the model's
        declared length (:func:`~lumos.rl.policy.check_context`)."""
        ids, mask = encode_prompts(self.tokenizer, rows, self.policy.pad_token_id)
        longest = int(mask.sum(-1).max()) if mask.numel() else 0
        check_context(longest, self.cfg.max_new_tokens, self._context_limit, f"Task {self.task.name!r}")
        return ids, mask

    def _rollout(self, step: int, rnd: int = 0) -> tuple[list[Problem], Rollout, range]:
        """Round ``rnd`` of step ``step``: this process's share of ``prompts_per_step`` problems × G samples."""
        cfg = self.cfg
        P = cfg.prompts_per_step
        problems = self.task.generate(P, seed=self._problem_seed(step, rnd))
        share = P // self.world
        groups = range(self.rank * share, (self.rank + 1) * share)
        rows = [problems[g] for g in groups for _ in range(cfg.group_size)]
        ids, mask = self._encode(rows)
        self.model.eval()
        ro = self._generation_policy().generate(
            ids, mask, max_new_tokens=cfg.max_new_tokens, **self._sampling(),
            generators=self._generators(step, range(rnd * P + groups.start, rnd * P + groups.stop)))
        return rows, ro, groups

    def _rewards(self, rows: list[Problem], ro: Rollout) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any] | None]:
        """Rewards (N,), this process's sums for the metrics (not reduced) and a sample: its text (``sample``, the
        rendered prompt + decoded completion) and completion token ids (``sample_completion_ids``, EOS included)."""
        texts, rewards = self._score(rows, ro)
        r = torch.tensor([x.total for x in rewards], dtype=torch.float32)
        unscorable = torch.tensor([bool(x.info.get("unscorable")) for x in rewards], dtype=torch.bool)
        if not bool((torch.isfinite(r) | (unscorable & r.isnan())).all()):
            raise LumosError(f"Task {self.task.name!r} returned a non-finite reward. Fix its verifier.")
        if self.cfg.overlong_cache:
            r = r + overlong_penalty(ro.lengths, self.cfg.max_new_tokens, self.cfg.overlong_cache)
        sums = torch.tensor([float(r.nansum()), sum(x.correct for x in rewards), sum(x.format for x in rewards),
                             float(ro.lengths.sum()), sum(f == "eos" for f in ro.finish_reasons), len(rows),
                             float(unscorable.sum())], dtype=torch.float64)
        sample = None
        if texts:   # the prompt as the model saw it + the completion, both through the policy's tokenizer
            ids = [int(t) for t in ro.response_ids[0][ro.response_mask[0]]]
            sample = {"sample": render_prompt(self.tokenizer, rows[0].prompt) + texts[0], "sample_completion_ids": ids}
        return r, sums, sample

    def _collect(self, step: int) -> tuple[Rollout, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Generation rounds of step ``step`` (one without dynamic sampling): the training batch of this process
        (rollout, rewards, global sample indices) and the metrics of the rounds."""
        cfg = self.cfg
        P, G = cfg.prompts_per_step, cfg.group_size
        ds = cfg.use_dynamic_sampling
        max_rounds = cfg.dynamic_sampling_max_rounds if ds else 1
        rounds: list[tuple[Rollout, torch.Tensor, torch.Tensor]] = []   # rollout, rewards, valid (per group)
        counts: list[torch.Tensor] = []                                   # (world,) valid groups per process
        sums = torch.zeros(7, dtype=torch.float64)
        sample: dict[str, Any] | None = None
        gen_s = 0.0
        while True:
            t0 = time.perf_counter()
            rows, ro, groups = self._rollout(step, len(rounds))
            gen_s += time.perf_counter() - t0
            r, s, smp = self._rewards(rows, ro)
            sums += s
            sample = sample if sample is not None else smp
            valid = (dynamic_sampling_mask(r, G).view(-1, G)[:, 0] if ds
                     else torch.ones(len(groups), dtype=torch.bool))
            c = torch.zeros(self.world, dtype=torch.float64)
            c[self.rank] = float(valid.sum())
            counts.append(dist.all_reduce_sum(c))      # identical on every process: same decision everywhere
            rounds.append((ro, r, valid))
            if int(sum(float(c.sum()) for c in counts)) >= P or len(rounds) >= max_rounds:
                break
        # the batch: the first P valid groups in (round, process, group) order, as one process would take them
        taken = 0
        parts: list[tuple[Rollout, torch.Tensor]] = []
        r_parts, idx_parts = [], []
        for (ro, r, valid), c in zip(rounds, counts):
            offset = mine = 0
            for k in range(self.world):
                n = min(int(c[k]), P - taken)
                if k == self.rank:
                    offset, mine = taken, n
                taken += n
            groups_kept = valid.nonzero()[:, 0][:mine]
            sample_rows = (groups_kept[:, None] * G + torch.arange(G)).reshape(-1)
            parts.append((ro, sample_rows))
            r_parts.append(r[sample_rows])
            pos = offset + torch.arange(mine)
            idx_parts.append((pos[:, None] * G + torch.arange(G)).reshape(-1))
        if len(rounds) == 1 and parts[0][1].numel() == rounds[0][0].response_ids.shape[0]:
            batch = rounds[0][0]       # nothing dropped: the rollout as generated
        else:
            batch = _cat_rollouts(parts, self.policy.pad_token_id)
        tot = dist.all_reduce_sum(sums)
        n = float(tot[5])
        scored = max(n - float(tot[6]), 1.0)
        valid_total = int(sum(float(c.sum()) for c in counts))
        stats: dict[str, Any] = {
            "reward": float(tot[0]) / scored, "accuracy": float(tot[1]) / n, "format": float(tot[2]) / n,
            "response_length": float(tot[3]) / n, "finished_eos": float(tot[4]) / n,
            "generation_rounds": len(rounds), "dropped_groups": len(rounds) * P - valid_total,
            "batch_groups": taken, "kept_fraction": valid_total / (len(rounds) * P), "unscorable": int(tot[6]),
            "_gen_s": gen_s, "_gen_tokens": float(tot[3])}
        if sample is not None:
            stats.update(sample)
        if ds and taken < P and not self._warned_short:
            self._warned_short = True
            warnings.warn(f"RL step {step}: dynamic sampling collected {taken} of {P} groups with reward spread in "
                          f"{len(rounds)} generation round(s) (dynamic_sampling_max_rounds); training on them. "
                          "The per-step counts are in metrics.jsonl (batch_groups, dropped_groups).", stacklevel=3)
        return batch, torch.cat(r_parts), torch.cat(idx_parts), stats

    def _advantages(self, r: torch.Tensor) -> torch.Tensor:
        G, scale = self.cfg.group_size, self.cfg.resolved_advantage_scale
        unscorable = bool(r.isnan().any())   # samples every reward function skipped: out of every statistic
        if scale == "batch" and self.world > 1:
            fin = r[~r.isnan()]
            s = dist.all_reduce_sum(torch.tensor([float(fin.sum()), float((fin * fin).sum()), fin.numel()],
                                                 dtype=torch.float64))
            n = max(float(s[2]), 1.0)
            mean_all = float(s[0]) / n
            std = math.sqrt(max(float(s[1]) / n - mean_all**2, 0.0) * n / max(n - 1, 1))
            centred = (group_advantages_skipping_nan(r, G, scale="none") if unscorable
                       else group_advantages(r, G, scale="none"))
            adv = centred / (std + 1e-4)   # zero-spread groups stay exactly 0
        elif r.numel() == 0:        # every group of this process was dropped
            adv = r.clone()
        elif unscorable:
            adv = group_advantages_skipping_nan(r, G, scale=scale)
        else:
            adv = group_advantages(r, G, scale=scale)
        return adv

    @torch.no_grad()
    def _logprobs_nograd(self, model_policy: Policy, ro: Rollout, chunk: int = 64) -> torch.Tensor:
        out = []
        for i in range(0, ro.response_ids.shape[0], chunk):
            rows = torch.arange(i, min(i + chunk, ro.response_ids.shape[0]))
            out.append(model_policy.token_logprobs(ro, self.cfg.temperature, rows=rows)[0].float().cpu())
        return torch.cat(out) if out else torch.zeros_like(ro.logprobs)

    # ---------------------------------------------------------------------------------------------- update
    def _minibatch(self, m: int, ro: Rollout, old: torch.Tensor, adv: torch.Tensor,
                   global_idx: torch.Tensor, ref: torch.Tensor | None) -> dict[str, float] | None:
        cfg = self.cfg
        sel = (global_idx % cfg.minibatches) == m
        rows = sel.nonzero()[:, 0]
        mask = ro.response_mask.float()
        counts = dist.all_reduce_sum(torch.tensor([float(mask[rows].sum()), float(rows.numel()),
                                                   float((adv[rows] != 0).sum())], dtype=torch.float64))
        if float(counts[1]) == 0:
            return None
        zero_adv = float(counts[2]) == 0     # the same on every process: the policy gradient is exactly zero
        if zero_adv and cfg.skip_zero_advantage_steps:
            return {"zero_advantage": 1.0, "zero_advantage_skip": 1.0}
        normalizer = float(counts[1]) if cfg.objective.normalizer == "sequences" else max(float(counts[0]), 1.0)
        if cfg.objective.normalizer == "max_tokens":    # Dr. GRPO: a constant, sequences × the generation limit
            normalizer = float(counts[1]) * cfg.max_new_tokens
        stats: dict[str, float] = {}
        loss_val = torch.zeros((), dtype=torch.float64)
        if not rows.numel():
            self.layout.idle(cfg.temperature)   # a sharded model's collectives run on every rank
        else:
            self.model.train()
            logp, ent = self.policy.token_logprobs(ro, cfg.temperature, rows=rows)
            dev = logp.device        # the model's device; the rollout's tensors live on the CPU
            kw = dict(self._loss_kw)
            if ref is not None:
                kw["ref_logp"] = ref[rows].to(dev)
            mask, ent = mask.to(dev), ent.detach().to(dev)
            loss, st = self.loss_fn(logp, old[rows].to(dev), adv[rows].to(dev), mask[rows], normalizer=normalizer, **kw)
            if (aux := self.layout.aux_loss(rows.numel() / float(counts[1]))) is not None:
                loss = loss + aux
            loss.backward()
            loss_val = loss.detach().double()
            stats = {k: float(v) for k, v in st.items() if k not in ("loss", "num_tokens")}
            stats["entropy"] = float((ent.detach() * mask[rows]).sum() / mask[rows].sum().clamp_min(1))
            if self.token_stats is not None:
                stats.update(self.token_stats(ro.response_ids[rows], logp.detach().cpu(), old[rows], adv[rows],
                                              mask[rows].cpu()))
        self.layout.reduce_gradients(self.params)
        total_loss = float(dist.all_reduce_sum(loss_val))
        grad_norm = self.layout.clip(self.params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        if not (math.isfinite(total_loss) and math.isfinite(grad_norm)):
            self.skipped_steps += 1
            warnings.warn(f"RL step {self.step}, minibatch {m}: non-finite loss ({total_loss}) or gradient norm "
                          f"({grad_norm}); optimizer step skipped ({self.skipped_steps} so far).", stacklevel=2)
            self.optimizer.zero_grad(set_to_none=True)
            return {"skipped": 1.0, "zero_advantage": float(zero_adv)}
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._updates += 1
        return {**stats, "loss": total_loss, "grad_norm": grad_norm, "skipped": 0.0, "zero_advantage": float(zero_adv)}

    def rl_step(self) -> dict[str, Any]:
        """One rollout batch and its ``minibatches`` optimizer steps; returns (and logs) the metrics row."""
        cfg, step = self.cfg, self.step
        lr = lr_at(cfg, step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        ro, r, global_idx, row = self._collect(step)
        gen_s, gen_tokens = row.pop("_gen_s"), row.pop("_gen_tokens")
        adv = self._advantages(r)
        old = ro.logprobs.float() if cfg.old_logp == "rollout" else self._logprobs_nograd(self._generation_policy(), ro)
        ref = None
        if self.ref_policy is not None:
            ref = self._logprobs_nograd(self.ref_policy, ro)
        t2 = time.perf_counter()
        results = [s for m in range(cfg.minibatches)
                   if (s := self._minibatch(m, ro, old, adv, global_idx, ref)) is not None]
        mb_stats = [s for s in results if "zero_advantage_skip" not in s]
        t3 = time.perf_counter()
        row.update(step=step + 1, lr=lr, rollout_s=gen_s, old_logp_s=t2 - t0 - gen_s, update_s=t3 - t2,
                   tokens_per_s=gen_tokens / max(gen_s, 1e-9), optimizer_steps=len(mb_stats),
                   zero_advantage_minibatches=int(sum(s["zero_advantage"] for s in results)),
                   zero_advantage_skips=len(results) - len(mb_stats))
        keys = sorted({k for s in mb_stats for k in s if k not in ("skipped", "zero_advantage")})
        for k in keys:
            vals = [s[k] for s in mb_stats if k in s]
            row[k] = max(vals) if k.endswith("_max") else sum(vals) / len(vals)
        row["skipped_steps"] = self.skipped_steps
        self.step += 1
        if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == cfg.steps):
            row["eval_accuracy"] = self.evaluate()
            row["eval_reward"] = self.last_eval_reward
        self.history.append(row)
        if self.run is not None and dist.is_main():
            self.run.log(row)
        return row

    # ---------------------------------------------------------------------------------------------- eval
    @torch.no_grad()
    def evaluate(self, problems: list[Problem] | None = None, samples: int | None = None, batch: int = 64) -> float:
        """Accuracy on ``problems`` (default the held-out set), split over processes.

        ``samples`` (default ``config.eval_samples``) completions per problem at the training temperature,
        accuracy = their mean (avg@k, as the paper's AIME numbers); ``samples=0`` decodes greedily. Sampling
        is seeded by (seed, step, problem), so an evaluation is reproducible and independent of the split.
        """
        problems = self.eval_problems if problems is None else problems
        k = self.cfg.eval_samples if samples is None else samples
        idx = list(range(self.rank, len(problems), self.world))
        self.model.eval()
        correct = reward = scored = 0.0
        reps = max(k, 1)
        per = max(batch // reps, 1)
        for i in range(0, len(idx), per):
            chunk = idx[i:i + per]
            rows = [problems[j] for j in chunk for _ in range(reps)]
            ids, mask = self._encode(rows)
            gens = None
            if k > 0:
                gens = [g for j in chunk for g in self._eval_generators(j, reps)]
            ro = self._generation_policy().generate(ids, mask, max_new_tokens=self.cfg.max_new_tokens, do_sample=k > 0,
                                                    generators=gens, **self._sampling())
            _, rewards = self._score(rows, ro)
            correct += sum(r.correct for r in rewards) / reps
            totals = [r.total for r in rewards if not math.isnan(r.total)]
            reward += sum(totals)
            scored += len(totals)
        tot = dist.all_reduce_sum(torch.tensor([correct, float(len(idx)), reward, scored], dtype=torch.float64))
        #: mean reward of the last evaluation's scorable samples (logged as ``eval_reward``)
        self.last_eval_reward = float(tot[2]) / max(float(tot[3]), 1.0)
        return float(tot[0]) / max(float(tot[1]), 1.0)

    def _eval_generators(self, j: int, reps: int) -> list[torch.Generator]:
        base = ((self.cfg.seed * _MIX + 7 * self.step + 3) * _MIX + j) % (1 << 56)
        if isinstance(self.policy, HFPolicy):
            return [torch.Generator().manual_seed(base * 64 + r) for r in range(reps)]
        gen = torch.Generator().manual_seed(base * 64)
        return [gen] * reps

    # ---------------------------------------------------------------------------------------------- loop
    def train(self, stop_after: int | None = None,
              callback: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """Run until ``config.steps`` (or until ``stop_after`` steps in total, to simulate an interruption)."""
        end = self.cfg.steps if stop_after is None else min(stop_after, self.cfg.steps)
        for _ in track(range(self.step, end), description=f"RL {self.cfg.algo}", total=end - self.step,
                       disable=None if dist.is_main() else True):
            row = self.rl_step()
            if callback is not None:
                callback(row)
            every = self.cfg.checkpoint_every
            if (every and self.step % every == 0) or self.step == self.cfg.steps:
                self.save()     # every rank calls it (rank 0 writes, the others wait at the barrier)
        return self.history

    def save(self) -> Path | None:
        """Checkpoint into ``<run>/checkpoints`` (rank 0 writes; every process waits for it)."""
        path = None
        if self.layout.sharded:    # every rank writes its shards (torch.distributed.checkpoint)
            root = self._checkpoint_root()
            if root is None:
                return None
            state = {"skipped_steps": self.skipped_steps, "config": self.cfg.to_dict()}
            return save_distributed(root, self.step, self.model, self.optimizer, state, keep=self.cfg.keep_checkpoints)
        if self.run is not None and dist.is_main():
            state = {"skipped_steps": self.skipped_steps, "config": self.cfg.to_dict()}
            path = save_checkpoint(self.run.path / "checkpoints", self.step, self.model, self.optimizer, state,
                                   keep=self.cfg.keep_checkpoints, tokenizer=self.tokenizer)
        dist.barrier()
        return path

    def _checkpoint_root(self) -> Path | None:
        """Where a sharded run's checkpoints go: rank 0's ``<run>/checkpoints``, broadcast (None: no run)."""
        import torch.distributed as tdist

        obj = [str(self.run.path / "checkpoints") if self.run is not None else None]
        if dist.is_distributed():
            tdist.broadcast_object_list(obj, src=0)
        return Path(obj[0]) if obj[0] is not None else None

    def resume(self, path: str | Path | None = None) -> int:
        """Restore the latest checkpoint of ``path`` (default: this run) and return the step reached.

        Metrics rows logged after that checkpoint (by an interrupted process) are dropped from ``metrics.jsonl``;
        rows before it, and the warm-start rows (``phase: sft``, whose steps count SFT steps), are kept.
        """
        root = Path(path) if path is not None else (self.run.path if self.run is not None else None)
        if self.layout.sharded and root is None:
            root = self._checkpoint_root()
        ckpt = latest_checkpoint(root) if root is not None else None
        if ckpt is None:
            raise LumosError(f"No checkpoint found under {root}. Train with checkpoint_every > 0 first.")
        if is_distributed_checkpoint(ckpt):      # written by a sharded run; loads sharded or not, any world size
            state = load_distributed(ckpt, self.model, self.optimizer)
            self.layout.invalidate()
        elif self.layout.sharded:
            raise LumosError(f"{ckpt} was written by a run without --fsdp; resume it without --fsdp / "
                             "--expert-parallel.")
        else:
            state = load_checkpoint(ckpt, self.model, self.optimizer)
        self.step = int(state["step"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        if self.run is not None and self.run.metrics_path.exists():
            rows = [r for r in read_jsonl(self.run.metrics_path)
                    if r.get("phase") == "sft" or r.get("step", 0) <= self.step]
            self.history = [r for r in rows if r.get("phase") != "sft"]
            if dist.is_main():
                atomic_write_text(self.run.metrics_path, "".join(to_json(r, indent=None) + "\n" for r in rows))
        return self.step

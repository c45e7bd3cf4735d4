"""``lumos rl study``: does CISPO beat DAPO/GRPO *because* clipping drops the gradients of rare, important tokens?

The MiniMax-M1 report argues that PPO-style clipping removes the gradient of rare "fork" tokens ("Wait",
"However") once their probability ratio r = π_θ/π_old exceeds 1 + ε, which happens quickly when a rollout
batch feeds many off-policy updates; CISPO keeps them with a capped weight. This study creates that
situation on purpose and measures it:

- **Task** ``guess-check`` (:mod:`lumos.rl.tasks.fork`): a guess is right ~1/9 of the time; the fork token
  ``?`` starts a verification that is right far more often. :func:`fork_warm_start` teaches the
  verification (phase 1, every demonstration forks), then makes the fork rare (phase 2, ``demo_fork_rate``).
- **Schedule**: each rollout batch feeds ``updates`` ∈ {1, 4, 16} optimizer steps (minibatches).
- **Paired runs**: per seed, every algorithm starts from the same warm-started weights with the same problem
  and sampling seeds, so the step-0 rollouts are identical (checked by a digest of the step-0 tokens).
- **Logged per RL step**: the fork token's exact probability on fixed probe contexts (prompt + guess), its
  rate in rollouts, the share of fork-token occurrences whose gradient clipping zeroes (DAPO/GRPO) or caps
  (CISPO), and the share of their importance-weighted gradient magnitude removed (:class:`ForkClipProbe`);
  eval accuracy avg@k, split by whether the completion forked.

DAPO runs without dynamic sampling here (all three see the same number of groups per step), so the
algorithms differ only in clipping and normalisation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lumos.core.errors import LumosError
from lumos.core.rundir import RunDir
from lumos.core.validation import (
    NONNEG,
    NONNEG_INT,
    POSITIVE,
    POSITIVE_INT,
    PROBABILITY,
    Constraint,
    InstanceOf,
    Interval,
    Problems,
    Satisfies,
    constraint,
    is_int,
)
from lumos.models import tiny_hybrid
from lumos.rl.config import RLConfig
from lumos.rl.objectives import LOSSES
from lumos.rl.policy import Policy, Rollout, left_pad
from lumos.rl.sft import SFTConfig, sft_warm_start
from lumos.rl.tasks.base import Problem
from lumos.rl.tasks.fork import GuessCheckTask
from lumos.rl.trainer import RLTrainer, decode_responses, encode_prompts

__all__ = ["StudyConfig", "fork_warm_start", "fork_probability", "ForkClipProbe", "evaluate_forks", "study_runs",
           "run_study", "load_runs", "merge_studies", "same_first_rollouts", "summarise",
           "report_study"]

_EVAL_SEED = 424_242

_ALGOS = Satisfies(lambda v: len(v) > 0 and all(isinstance(a, str) and a in LOSSES for a in v),
                   "a non-empty list of registered objective names (lumos.rl.objectives.available_losses())")
_UPDATES = Satisfies(lambda v: len(v) > 0 and all(is_int(u) and u >= 1 for u in v), "a non-empty list of ints ≥ 1")


def _f(default: Any, *accepted: Constraint | None, help: str | None = None) -> Any:
    return field(default=default, metadata=constraint(*accepted, help=help))


@dataclass
class StudyConfig:
    """Sizes of the CISPO mechanism study (defaults: the README run; :meth:`quick`: the smoke size)."""

    algos: tuple[str, ...] = _f(("cispo", "dapo", "grpo"), _ALGOS)
    updates: tuple[int, ...] = _f((1, 4, 16), _UPDATES, help="optimizer updates per rollout batch (each a divisor "
                                  "of prompts_per_step × group_size)")
    seeds: int = _f(5, POSITIVE_INT)
    seed: int = _f(0, NONNEG_INT)
    steps: int = _f(15, POSITIVE_INT)
    prompts_per_step: int = _f(4, POSITIVE_INT)
    group_size: int = _f(16, Interval(int, 2, None, closed="left"))
    lr: float = _f(1e-3, POSITIVE)
    eval_every: int = _f(5, POSITIVE_INT)
    eval_problems: int = _f(40, POSITIVE_INT)
    eval_samples: int = _f(4, NONNEG_INT)
    target: float = _f(0.15, PROBABILITY)
    hidden: int = _f(32, POSITIVE_INT)
    max_operand: int = _f(4, POSITIVE_INT)
    sft_steps: int = _f(400, POSITIVE_INT)
    sft_rare_steps: int = _f(100, POSITIVE_INT)
    demo_fork_rate: float = _f(0.04, PROBABILITY)
    #: MoE load-balancing coefficient of the tiny model (None: the model default 0.001). With Adam's eps = 1e-15
    #: its tiny gradient alone is normalised to full-size steps when every advantage is zero (see README).
    router_aux_loss_coef: float | None = _f(None, NONNEG, None)
    rl_overrides: dict[str, Any] = field(default_factory=dict, metadata=constraint(InstanceOf(dict)))

    def __post_init__(self) -> None:
        self.algos, self.updates = tuple(self.algos), tuple(self.updates)
        p = Problems("StudyConfig")
        p.fields(self)
        if p.ok("updates", "prompts_per_step", "group_size"):
            batch = self.prompts_per_step * self.group_size
            bad = [u for u in self.updates if batch % u]
            if bad:
                p.param("updates", f"divisors of prompts_per_step × group_size = {batch}", list(self.updates))
        p.raise_if_any()

    @classmethod
    def quick(cls, **kw: Any) -> StudyConfig:
        """The smoke-test size (seconds): 2 seeds, schedules 1 and 4, 2 RL steps, evaluation at start and end."""
        base: dict[str, Any] = dict(updates=(1, 4), seeds=2, steps=2, prompts_per_step=2, group_size=4, eval_every=2,
                    eval_problems=4, eval_samples=2, hidden=16, sft_steps=10, sft_rare_steps=3)
        base.update(kw)
        return cls(**base)

    def rl_config(self, algo: str, updates: int, seed: int) -> RLConfig:
        """The RL run of one (algorithm, schedule, seed); clip parameters are each algorithm's defaults."""
        kw: dict[str, Any] = dict(
            algo=algo, steps=self.steps, prompts_per_step=self.prompts_per_step, group_size=self.group_size,
            minibatches=updates, max_new_tokens=8, lr=self.lr, dynamic_sampling=False, eval_every=0, seed=seed,
            eval_problems=1, task="guess-check", task_kwargs={"max_operand": self.max_operand})
        kw.update(self.rl_overrides)
        return RLConfig(**kw)


# ------------------------------------------------------------------------------------------------ warm start


def fork_warm_start(model: nn.Module, cfg: StudyConfig, seed: int) -> dict[str, float]:
    """Two-phase SFT: every demonstration forks (learn the verification), then a share ``demo_fork_rate``
    does (make the fork rare). Returns the last loss of each phase."""
    teach = GuessCheckTask(cfg.max_operand, demo_fork_rate=1.0)
    rare = GuessCheckTask(cfg.max_operand, demo_fork_rate=cfg.demo_fork_rate)
    l1 = sft_warm_start(model, teach, SFTConfig(steps=cfg.sft_steps, batch_size=32, lr=6e-3, seed=seed))
    l2 = sft_warm_start(model, rare, SFTConfig(steps=cfg.sft_rare_steps, batch_size=32, lr=2e-3, warmup_steps=1,
                                               seed=seed + 10_007))
    return {"sft_loss_teach": l1[-1], "sft_loss_rare": l2[-1]}


# ------------------------------------------------------------------------------------------------ probes


@torch.no_grad()
def fork_probability(policy: Policy, task: GuessCheckTask, problems: list[Problem], tokenizer: Any,
                     temperature: float = 1.0) -> float:
    """Mean exact π(fork | prompt, guess) over ``problems``, each with its own guess (``meta["guess"]``).

    The context is what the policy sees at the fork position: BOS + prompt + guess; the probability is that
    of the fork token next (softmax of logits / temperature, as in training).
    """
    fork_id = tokenizer.encode(task.fork_token)
    p_ids, p_mask = left_pad([tokenizer.encode(p.prompt, add_bos=True) for p in problems], policy.pad_token_id)
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


# ------------------------------------------------------------------------------------------------ the study


def _derived(row: dict[str, Any]) -> dict[str, Any]:
    """Ratios of the per-step fork counts (NaN when the step had none)."""
    def ratio(a: str, b: str) -> float:
        return row[a] / row[b] if row.get(b) else math.nan

    out = {"rollout_fork_rate": ratio("fork_seqs", "seqs"), "fork_clip_share": ratio("fork_clipped_n", "fork_live_n")}
    out["fork_grad_zeroed"] = 1.0 - ratio("fork_grad_kept", "fork_grad_full") if row.get("fork_grad_full") else math.nan
    return out


def _train_one(model: nn.Module, cfg: StudyConfig, algo: str, updates: int, seed: int,
               eval_set: list[Problem], log: Any) -> tuple[list[dict[str, Any]], str]:
    """One paired run; returns its history (eval rows merged) and the digest of its step-0 rollouts."""
    task = GuessCheckTask(cfg.max_operand)
    trainer = RLTrainer(model, task, cfg.rl_config(algo, updates, seed))
    probe = ForkClipProbe(trainer, trainer.tokenizer.encode(task.fork_token)[0])
    trainer.token_stats = probe
    tag = {"algo": algo, "updates": updates, "seed": seed}
    history = [{"step": 0, "seed": seed, **evaluate_forks(trainer, eval_set, cfg.eval_samples, seed * 7919)}]
    log({**tag, **history[0]})
    for _ in range(cfg.steps):
        row = {k: v for k, v in trainer.rl_step().items() if k != "sample"}
        row.update(_derived(row))
        if trainer.step % cfg.eval_every == 0 or trainer.step == cfg.steps:
            row.update(evaluate_forks(trainer, eval_set, cfg.eval_samples, seed * 7919 + trainer.step))
        history.append(row)
        log({**tag, **row})
    return history, probe.digests.get(0, "")


def _model(cfg: StudyConfig, seed: int) -> nn.Module:
    extra = {} if cfg.router_aux_loss_coef is None else {"router_aux_loss_coef": cfg.router_aux_loss_coef}
    return tiny_hybrid(cfg.hidden, 2, seed=seed, **extra)


def study_runs(cfg: StudyConfig, log: Any, progress: Any = None) -> tuple[dict[tuple[int, str], list[list[dict[str, Any]]]], bool]:
    """Warm start per seed (shared by every schedule and algorithm), then every (schedule, seed, algorithm).

    Returns the histories per (updates, algo) and whether the step-0 rollouts of each seed and schedule were
    identical across algorithms. ``log(row)`` receives every metrics row, ``progress(msg)`` one line per run.
    """
    eval_set = GuessCheckTask(cfg.max_operand).generate(cfg.eval_problems, seed=_EVAL_SEED)
    runs: dict[tuple[int, str], list[list[dict[str, Any]]]] = {}
    digests: dict[tuple[int, int], set[str]] = {}
    warm: dict[int, dict[str, torch.Tensor]] = {}
    for u in cfg.updates:
        for s in range(cfg.seeds):
            seed = cfg.seed + s
            if seed not in warm:
                model = _model(cfg, seed)
                log({"phase": "sft", "seed": seed, **fork_warm_start(model, cfg, seed)})
                warm[seed] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            for algo in cfg.algos:
                if progress is not None:
                    progress(f"updates {u}, seed {seed}, {algo}")
                model = _model(cfg, seed)
                model.load_state_dict(warm[seed])
                hist, digest = _train_one(model, cfg, algo, u, seed, eval_set, log)
                runs.setdefault((u, algo), []).append(hist)
                digests.setdefault((u, seed), set()).add(digest)
    return runs, all(len(d) == 1 for d in digests.values())


def run_study(cfg: StudyConfig, out: str | Path | None = None,
              progress: Any = None) -> tuple[RunDir, dict[str, list[dict[str, Any]]]]:
    """``lumos rl study``: :func:`study_runs` into a run directory with tables, plots and report.

    Returns the run directory and the tables (``summary``, ``paired``; see :func:`summarise`).
    """
    run = RunDir.create("rl study", dataclasses.asdict(cfg), out=out, seed=cfg.seed,
                        title="lumos rl study — CISPO vs DAPO vs GRPO on a rare fork token")
    with run:
        runs, paired_ok = study_runs(cfg, run.log, progress)
        paired_ok = paired_ok and same_first_rollouts(runs)
        tables = summarise(runs, cfg)
        report_study(run.report.section("CISPO mechanism study"), run, cfg, runs, tables, paired_ok)
    return run, tables


def load_runs(run_dir: str | Path) -> tuple[StudyConfig, dict[tuple[int, str], list[list[dict[str, Any]]]]]:
    """The config and histories of a study run directory (also a partial one: finished seeds only count
    when every algorithm of that seed and schedule has its final step)."""
    from lumos.core.io import read_json, read_jsonl

    cfg = StudyConfig(**read_json(Path(run_dir) / "config.json"))
    by: dict[tuple[int, str, int], list[dict[str, Any]]] = {}
    for r in read_jsonl(Path(run_dir) / "metrics.jsonl"):
        if "algo" in r:
            by.setdefault((r["updates"], r["algo"], r["seed"]), []).append(
                {k: v for k, v in r.items() if k not in ("algo", "updates")})
    done = {(u, s) for (u, _, s) in by
            if all(len(by.get((u, a, s), [])) == cfg.steps + 1 for a in cfg.algos)}
    runs: dict[tuple[int, str], list[list[dict[str, Any]]]] = {}
    for (u, a, s), h in sorted(by.items()):
        if (u, s) in done:
            runs.setdefault((u, a), []).append(h)
    return cfg, runs


def same_first_rollouts(runs: dict[tuple[int, str], list[list[dict[str, Any]]]]) -> bool:
    """Whether, per schedule and seed, every algorithm logged the same step-0 evaluation and the same statistics
    of its first rollout batch (drawn before any update: reward, accuracy, length, fork rate)."""
    keys = ("reward", "accuracy", "response_length", "rollout_fork_rate")
    seen: dict[tuple[int, int], set[tuple[Any, ...]]] = {}
    for (u, _), hs in runs.items():
        for h in hs:
            first = next((r for r in h if r["step"] == 1), {})
            sig = (h[0].get("eval_accuracy"), h[0].get("fork_prob"), *(first.get(k) for k in keys))
            seen.setdefault((u, h[0].get("seed", -1)), set()).add(sig)
    return all(len(v) == 1 for v in seen.values())


def merge_studies(run_dirs: list[str | Path], out: str | Path | None = None) -> tuple[RunDir, dict[str, list[dict[str, Any]]]]:
    """One report from study run directories that split a sweep (``--updates``, ``--seed``/``--seeds``).

    The parts must agree on every setting but ``updates``, ``seed`` and ``seeds``; the finished seeds of each
    part are pooled per (schedule, algorithm).
    """
    parts = [load_runs(d) for d in run_dirs]
    if not parts:
        raise LumosError("merge_studies needs at least one study run directory.")
    varying = {"updates", "seed", "seeds"}
    first = {k: v for k, v in dataclasses.asdict(parts[0][0]).items() if k not in varying}
    for d, (c, _) in zip(run_dirs, parts):
        other = {k: v for k, v in dataclasses.asdict(c).items() if k not in varying}
        if other != first:
            diff = sorted(k for k in first if first[k] != other.get(k))
            raise LumosError(f"Study {d} differs from {run_dirs[0]} in {', '.join(diff)}; merge only parts of one sweep.")
    runs: dict[tuple[int, str], list[list[dict[str, Any]]]] = {}
    for _, r in parts:
        for key, hs in r.items():
            runs.setdefault(key, []).extend(hs)
    for hs in runs.values():
        hs.sort(key=lambda h: h[0]["seed"])
    updates = tuple(sorted({u for u, _ in runs}))
    seeds = min((len(hs) for hs in runs.values()), default=0)
    cfg = dataclasses.replace(parts[0][0], updates=updates or parts[0][0].updates, seeds=max(seeds, 1))
    run = RunDir.create("rl study", {"merged": [str(d) for d in run_dirs], **dataclasses.asdict(cfg)}, out=out,
                        seed=cfg.seed, title="lumos rl study — CISPO vs DAPO vs GRPO on a rare fork token")
    with run:
        for (u, algo), hs in sorted(runs.items()):
            for h in hs:
                for row in h:
                    run.log({"algo": algo, "updates": u, **row})
        tables = summarise(runs, cfg)
        paired_ok = same_first_rollouts(runs)
        sec = run.report.section("CISPO mechanism study")
        sec.note(f"Merged from {len(run_dirs)} run directories: {', '.join(map(str, run_dirs))}; seeds per "
                 f"(schedule, algorithm): {', '.join(f'{u}/{a}: {len(h)}' for (u, a), h in sorted(runs.items()))}.")
        report_study(sec, run, cfg, runs, tables, paired_ok)
    return run, tables


def _mean_sd(xs: list[float]) -> tuple[float, float]:
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return math.nan, math.nan
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / max(len(xs) - 1, 1))


def _pm(xs: list[float], digits: int = 3) -> str:
    m, s = _mean_sd(xs)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def _last(h: list[dict[str, Any]], key: str) -> float:
    return next((r[key] for r in reversed(h) if key in r), math.nan)


def _pooled(hs: list[list[dict[str, Any]]], num: str, den: str) -> float:
    """Σ num / Σ den over every step of every seed (per-step values are minibatch means, × minibatches)."""
    n = d = 0.0
    for h in hs:
        for r in h:
            if den in r:
                n += r[num] * r["optimizer_steps"]
                d += r[den] * r["optimizer_steps"]
    return n / d if d else math.nan


def _steps_to(h: list[dict[str, Any]], target: float) -> int | None:
    return next((int(r["step"]) for r in h if r.get("eval_accuracy", -1.0) >= target), None)


def summarise(runs: dict[tuple[int, str], list[list[dict[str, Any]]]], cfg: StudyConfig) -> dict[str, list[dict[str, Any]]]:
    """The study's two tables: per (schedule, algorithm) and the paired CISPO − other differences."""
    summary = []
    for (u, algo), hs in runs.items():
        reached = [_steps_to(h, cfg.target) for h in hs]
        grad_kept = _pooled(hs, "fork_grad_kept", "fork_grad_full")
        summary.append({
            "updates/batch": u, "algo": algo,
            "fork prob start → end": f"{_mean_sd([h[0]['fork_prob'] for h in hs])[0]:.3f} → "
                                     f"{_pm([_last(h, 'fork_prob') for h in hs])}",
            "fork tokens clipped": f"{100 * _pooled(hs, 'fork_clipped_n', 'fork_live_n'):.1f} %",
            "fork gradient removed": f"{100 * (1 - grad_kept):.1f} %",
            "all tokens clipped": f"{100 * _mean_sd([r['clip_frac'] for h in hs for r in h if 'clip_frac' in r])[0]:.2f} %",
            "steps to target": ", ".join("-" if s is None else str(s) for s in reached),
            "reached": f"{sum(s is not None for s in reached)}/{len(hs)}",
            "final accuracy": _pm([_last(h, "eval_accuracy") for h in hs]),
            "final acc given fork": _pm([_last(h, "eval_acc_fork") for h in hs]),
        })
    paired = []
    for u in cfg.updates:
        if "cispo" not in cfg.algos or (u, "cispo") not in runs:
            continue
        base = [_last(h, "eval_accuracy") for h in runs[(u, "cispo")]]
        base_f = [_last(h, "fork_prob") for h in runs[(u, "cispo")]]
        for algo in cfg.algos:
            if algo == "cispo":
                continue
            other = [_last(h, "eval_accuracy") for h in runs[(u, algo)]]
            other_f = [_last(h, "fork_prob") for h in runs[(u, algo)]]
            d = [a - b for a, b in zip(base, other)]
            paired.append({
                "updates/batch": u, "cispo −": algo,
                "Δ final accuracy (mean ± sd)": _pm(d),
                "per seed": ", ".join(f"{x:+.2f}" for x in d),
                "cispo wins/ties/losses": f"{sum(x > 0 for x in d)}/{sum(x == 0 for x in d)}/{sum(x < 0 for x in d)}",
                "Δ final fork prob": _pm([a - b for a, b in zip(base_f, other_f)]),
            })
    return {"summary": summary, "paired": paired}


def _plot(runs: dict[tuple[int, str], list[list[dict[str, Any]]]], cfg: StudyConfig) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = (("fork_prob", "fork-token probability"), ("eval_accuracy", "eval accuracy (avg@k)"),
            ("fork_grad_zeroed", "share of fork gradient clipped"))
    fig, axes = plt.subplots(len(cfg.updates), len(keys), figsize=(4.2 * len(keys), 2.8 * len(cfg.updates)),
                             squeeze=False)
    for i, u in enumerate(cfg.updates):
        for j, (key, title) in enumerate(keys):
            ax = axes[i][j]
            for algo in cfg.algos:
                hs = runs.get((u, algo), [])
                steps = sorted({r["step"] for h in hs for r in h if key in r and not math.isnan(r[key])})
                if not steps:
                    continue
                vals = torch.tensor([[next((r[key] for r in h if r["step"] == s and key in r), math.nan)
                                      for s in steps] for h in hs], dtype=torch.float64)
                mean = vals.nanmean(0)
                ax.plot(steps, mean.tolist(), label=algo)
                if vals.shape[0] > 1:
                    sd = torch.sqrt(((vals - mean) ** 2).nanmean(0))
                    ax.fill_between(steps, (mean - sd).tolist(), (mean + sd).tolist(), alpha=0.15)
            ax.set_title(f"{title}, {u} update(s)/batch", fontsize=9)
            ax.set_xlabel("RL step")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def report_study(sec: Any, run: RunDir, cfg: StudyConfig, runs: dict[tuple[int, str], list[list[dict[str, Any]]]],
                 tables: dict[str, list[dict[str, Any]]], paired_ok: bool) -> None:
    """Describe the study in report section ``sec``: settings, the plot (saved as ``plots/study.png``), tables."""
    sec.text(
        f"Task guess-check (operands 0..{cfg.max_operand}): a guess, optionally the fork token '?' and a "
        f"verification. Tiny hybrid model (hidden {cfg.hidden}, 2 layers), warm start {cfg.sft_steps} SFT steps "
        f"with every demonstration forking, then {cfg.sft_rare_steps} with {100 * cfg.demo_fork_rate:.0f} % forking. "
        f"RL: {cfg.steps} steps of {cfg.prompts_per_step} prompts × {cfg.group_size} samples, lr {cfg.lr}, "
        f"{', '.join(map(str, cfg.updates))} optimizer update(s) per rollout batch, {cfg.seeds} seeds; clip "
        f"parameters are each algorithm's defaults (CISPO ε_high 4, DAPO 0.2/0.28, GRPO 0.2); no dynamic "
        f"sampling. Eval: avg@{cfg.eval_samples} at temperature 1 on {cfg.eval_problems} problems every "
        f"{cfg.eval_every} steps; target accuracy {cfg.target}. Paired runs: every algorithm of a seed starts from "
        f"the same weights and draws the same step-0 rollouts — "
        + ("verified (identical step-0 evaluations and first rollout batches)." if paired_ok
           else "NOT verified: the first rollout batches differ."))
    fig = _plot(runs, cfg)
    run.save_figure(fig, "study")
    sec.figure(fig)
    sec.table(tables["summary"], caption="Per schedule and algorithm, mean over seeds. 'fork tokens clipped': "
              "occurrences of '?' with a non-zero advantage whose gradient the objective zeroes (DAPO/GRPO) or caps "
              "(CISPO); 'fork gradient removed': share of their importance-weighted gradient magnitude lost.")
    if tables["paired"]:
        sec.table(tables["paired"], caption="Paired differences (same seed, same warm start, same step-0 rollouts).")

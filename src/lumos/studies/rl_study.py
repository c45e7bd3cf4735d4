"""``lumos rl study``: CISPO against DAPO, GRPO, GSPO and Dr. GRPO on a rare, valuable fork token — compared fairly.

The MiniMax-M1 report argues that PPO-style clipping removes the gradient of rare "fork" tokens ("Wait",
"However") once their probability ratio r = π_θ/π_old exceeds 1 + ε, which happens quickly when a rollout
batch feeds many off-policy updates; CISPO keeps them with a capped weight. This study creates that
situation on purpose and measures it:

- **Task** ``guess-check`` (:mod:`lumos.rl.tasks.fork`): a guess is right ~1/9 of the time; the fork token
  ``?`` starts a verification that is right far more often. :func:`fork_warm_start` teaches the
  verification (phase 1, every demonstration forks), then makes the fork rare (phase 2, ``demo_fork_rate``).
- **Schedule**: each rollout batch feeds ``updates`` ∈ {1, 4, 16} optimizer steps (minibatches).
- **Arms**, each as its paper runs it (:data:`ARMS`): ``cispo`` and ``dapo`` with dynamic sampling (both the
  DAPO paper and MiniMax's recipe use it; ``dynamic_sampling="off"`` turns it off for every arm), ``grpo``
  with its KL term (β = ``grpo_beta``, DeepSeekMath's 0.04), ``ppo-seq`` (GRPO's loss with β = 0: PPO-clip with
  a per-sequence mean), ``gspo`` (sequence-level ratio, ε 3e-4 / 4e-4) and ``dr_grpo``.
- **Fair by construction**: every arm gets its own learning-rate grid (``lr_grid``; CISPO also an
  ``eps_high_grid``); every grid point runs on the tuning seeds *and* the held-out evaluation seeds. The
  configuration of each arm is chosen on the tuning seeds only and reported on the evaluation seeds; the
  report says when the chosen value sits at the edge of its grid (optimum not bracketed). Three comparisons,
  all on the evaluation seeds: *tuned* (each arm at its chosen lr), *matched lr* (every arm at ``lr``) and
  *matched KL* (each arm at the grid point whose mean approx. KL(π_old‖π_θ) per batch on the tuning seeds is
  nearest, in log, to the geometric mean of the tuned arms' KLs).
- **Metric**: eval accuracy avg@``eval_samples`` over ``eval_problems`` (≥ 200 samples by default), averaged
  over the last ``last_k`` evaluations of a run; differences between arms are paired by seed (same warm start,
  same problems and sampling seeds) with a bootstrap 95 % interval over seeds. An interval containing 0 is a
  tie at this scale.
- **Logged per RL step**: the fork token's exact probability on fixed probe contexts (prompt + guess), its
  rate in rollouts, the share of fork-token occurrences whose gradient clipping zeroes (PPO-clip) or caps
  (CISPO), and the share of their importance-weighted gradient magnitude removed (:class:`ForkClipProbe`);
  the step's rollout + training FLOPs (:func:`lumos.studies.curves.rl_step_flops`), for compute curves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lumos.core.errors import LumosError
from lumos.core.rundir import RunDir
from lumos.core.validation import (
    NONNEG,
    POSITIVE,
    POSITIVE_INT,
    PROBABILITY,
    Boolean,
    Constraint,
    InstanceOf,
    Interval,
    Options,
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

__all__ = ["ARMS", "StudyConfig", "fork_warm_start", "fork_probability", "ForkClipProbe", "evaluate_forks",
           "study_runs", "run_study", "load_runs", "merge_studies", "same_first_rollouts", "summarise",
           "paired_bootstrap", "study_curves", "report_study"]

_EVAL_SEED = 424_242
STUDY_VERSION = 2


@dataclass(frozen=True)
class Arm:
    """One compared method: the registered objective, its RLConfig settings, and whether its paper uses
    dynamic sampling."""

    objective: str
    settings: tuple[tuple[str, Any], ...] = ()
    paper_dynamic_sampling: bool = False
    help: str = ""


#: the arms the study knows (any other registered objective name is an arm with its defaults, no dynamic sampling)
ARMS: dict[str, Arm] = {
    "cispo": Arm("cispo", (), True, "CISPO (MiniMax-M1) with dynamic sampling"),
    "dapo": Arm("dapo", (), True, "DAPO: clip-higher 0.2/0.28, token mean, dynamic sampling"),
    "grpo": Arm("grpo", (("beta", "grpo_beta"),), False, "GRPO with its KL term (β = grpo_beta)"),
    "ppo-seq": Arm("grpo", (), False, "GRPO's loss with β = 0: PPO-clip, per-sequence mean"),
    "gspo": Arm("gspo", (), False, "GSPO: sequence-level ratio and clip (3e-4 / 4e-4)"),
    "dr_grpo": Arm("dr_grpo", (), False, "Dr. GRPO: no length or std normalisation"),
}


def arm_names() -> list[str]:
    """Every arm name: :data:`ARMS` and the other registered objectives."""
    return list(ARMS) + [a for a in sorted(LOSSES.names()) if a not in ARMS]


def _arm(name: str) -> Arm:
    return ARMS.get(name) or Arm(name)


_ARMS_OK = Satisfies(lambda v: isinstance(v, tuple) and len(v) > 0 and len(set(v)) == len(v)
                     and all(isinstance(a, str) and a in arm_names() for a in v),
                     "a non-empty list of distinct arms (lumos.studies.rl_study.arm_names(): the study's arms and "
                     "every registered objective)")
_UPDATES = Satisfies(lambda v: isinstance(v, tuple) and len(v) > 0 and all(is_int(u) and u >= 1 for u in v),
                     "a non-empty list of ints ≥ 1")
_SEEDS = Satisfies(lambda v: isinstance(v, tuple) and all(is_int(u) and u >= 0 for u in v),
                   "a list of ints ≥ 0")
_POSITIVE_LIST = Satisfies(lambda v: isinstance(v, tuple) and len(v) > 0 and all(POSITIVE.is_satisfied_by(x) for x in v),
                           "a non-empty list of finite floats > 0")


def _f(default: Any, *accepted: Constraint | None, help: str | None = None) -> Any:
    return field(default=default, metadata=constraint(*accepted, help=help))


@dataclass
class StudyConfig:
    """Sizes of the study (defaults: the documented run; :meth:`quick`: the test size).

    Seeds: ``tune_seeds`` choose each arm's configuration, ``eval_seeds`` (disjoint) report it. A study can be
    split over processes by ``updates`` or by seeds (a part may have no tuning seeds) and merged
    (:func:`merge_studies`). ``lr_grid`` maps arm → learning rates (arms not named use ``(lr,)``);
    ``eps_high_grid`` is CISPO's ε_high grid.
    """

    algos: tuple[str, ...] = _f(("cispo", "dapo", "grpo"), _ARMS_OK)
    updates: tuple[int, ...] = _f((1, 4, 16), _UPDATES, help="optimizer updates per rollout batch (each a divisor "
                                  "of prompts_per_step × group_size)")
    tune_seeds: tuple[int, ...] = _f((100, 101), _SEEDS, help="seeds that choose each arm's grid point")
    eval_seeds: tuple[int, ...] = _f((0, 1, 2, 3, 4), _SEEDS, help="held-out seeds the tables report")
    steps: int = _f(15, POSITIVE_INT)
    prompts_per_step: int = _f(4, POSITIVE_INT)
    group_size: int = _f(16, Interval(int, 2, None, closed="left"))
    lr: float = _f(5e-4, POSITIVE, help="the shared learning rate of the matched-lr comparison (and of arms "
                   "without an lr_grid)")
    lr_grid: dict[str, tuple[float, ...]] = field(default_factory=dict, metadata=constraint(InstanceOf(dict)))
    eps_high_grid: tuple[float, ...] = _f((4.0,), _POSITIVE_LIST, help="CISPO's ε_high values")
    dynamic_sampling: str = _f("paper", Options(str, ("paper", "on", "off")),
                               help="paper: on for the arms whose paper uses it (cispo, dapo); on/off: every arm")
    grpo_beta: float = _f(0.04, POSITIVE, help="the KL coefficient of the grpo arm (DeepSeekMath: 0.04)")
    eval_every: int = _f(5, POSITIVE_INT)
    eval_problems: int = _f(50, POSITIVE_INT)
    eval_samples: int = _f(4, POSITIVE_INT)
    last_k: int = _f(2, POSITIVE_INT, help="evaluations averaged at the end of each run")
    target: float = _f(0.15, PROBABILITY)
    hidden: int = _f(32, POSITIVE_INT)
    max_operand: int = _f(4, POSITIVE_INT)
    sft_steps: int = _f(400, POSITIVE_INT)
    sft_rare_steps: int = _f(100, POSITIVE_INT)
    demo_fork_rate: float = _f(0.04, PROBABILITY)
    n_boot: int = _f(2000, POSITIVE_INT, help="bootstrap resamples of the paired intervals")
    #: one warm start (from the smallest seed) shared by every seed, instead of one per seed: cheaper; the seeds
    #: then differ only in their RL problems and sampling (the quick size uses it)
    shared_warm_start: bool = _f(False, Boolean())
    #: MoE load-balancing coefficient of the tiny model (None: the model default 0.001). With Adam's eps = 1e-15
    #: its tiny gradient alone is normalised to full-size steps when every advantage is zero (see README).
    router_aux_loss_coef: float | None = _f(None, NONNEG, None)
    rl_overrides: dict[str, Any] = field(default_factory=dict, metadata=constraint(InstanceOf(dict)))
    study_version: int = _f(STUDY_VERSION, Options(int, (STUDY_VERSION,)))

    def __post_init__(self) -> None:
        for name in ("algos", "updates", "tune_seeds", "eval_seeds", "eps_high_grid"):
            if isinstance(getattr(self, name), list):
                setattr(self, name, tuple(getattr(self, name)))
        if isinstance(self.lr_grid, dict):
            self.lr_grid = {k: tuple(v) if isinstance(v, list) else v for k, v in self.lr_grid.items()}
        self._problems().raise_if_any()

    def _problems(self) -> Problems:
        p = Problems("StudyConfig")
        p.fields(self)
        if p.ok("updates", "prompts_per_step", "group_size"):
            batch = self.prompts_per_step * self.group_size
            if [u for u in self.updates if batch % u]:
                p.param("updates", f"divisors of prompts_per_step × group_size = {batch}", list(self.updates))
        if p.ok("tune_seeds", "eval_seeds"):
            seeds = [*self.tune_seeds, *self.eval_seeds]
            if not seeds:
                p.param("eval_seeds", "non-empty when tune_seeds is empty (a study needs a seed)", [])
            elif len(set(seeds)) != len(seeds):
                p.param("eval_seeds", f"seeds distinct from each other and from tune_seeds {list(self.tune_seeds)} "
                        "(a seed used twice is counted twice, or tuned on and reported)", list(self.eval_seeds))
        if p.ok("lr_grid", "algos"):
            for arm, grid in self.lr_grid.items():
                if arm not in self.algos:
                    p.param("lr_grid", f"keyed by arms among algos {list(self.algos)}", f"lr_grid names {arm!r}")
                elif not _POSITIVE_LIST.is_satisfied_by(grid):
                    p.param(f"lr_grid[{arm!r}]", str(_POSITIVE_LIST), grid)
        if not p.items:       # every run's RLConfig, validated before any run directory exists
            for arm in self.algos:
                for lr, eps in self.grid(arm):
                    try:
                        self.rl_config(arm, self.updates[0], 0, lr=lr, eps_high=eps)
                    except LumosError as e:
                        p.require(False, f"arm {arm!r} at lr {lr}: {e}")
                        break
        return p

    @classmethod
    def quick(cls, **kw: Any) -> StudyConfig:
        """The test size (a minute or two of one core): 2 arms, one schedule, a 2-point lr grid per arm, 1
        tuning + 2 evaluation seeds, one shared warm start, 4 RL steps of 2 × 8 rollouts on operands 0..2. The
        warm start teaches the verification (300 steps) and leaves the fork at ~20 %, so accuracy starts near
        0.15 and RL moves it (not a tie at 0)."""
        base: dict[str, Any] = dict(
            algos=("cispo", "dapo"), updates=(4,), tune_seeds=(100,), eval_seeds=(0, 1), steps=4, prompts_per_step=2,
            group_size=8, lr=1e-3, lr_grid={"cispo": (1e-3, 3e-3), "dapo": (1e-3, 3e-3)}, eval_every=2, eval_problems=9,
            eval_samples=8, last_k=2, hidden=32, max_operand=2, sft_steps=300, sft_rare_steps=40,
            demo_fork_rate=0.2, n_boot=200, shared_warm_start=True)
        base.update(kw)
        return cls(**base)

    def grid(self, arm: str) -> list[tuple[float, float | None]]:
        """The (lr, eps_high) points of ``arm`` (eps_high None: the objective's default)."""
        lrs = self.lr_grid.get(arm, (self.lr,))
        eps: tuple[float | None, ...] = self.eps_high_grid if _arm(arm).objective == "cispo" else (None,)
        return [(lr, e) for lr in lrs for e in eps]

    def dynamic_sampling_for(self, arm: str) -> bool:
        return {"on": True, "off": False}.get(self.dynamic_sampling, _arm(arm).paper_dynamic_sampling)

    def rl_config(self, arm: str, updates: int, seed: int, *, lr: float | None = None,
                  eps_high: float | None = None) -> RLConfig:
        """The RL run of one (arm, schedule, seed, grid point)."""
        a = _arm(arm)
        kw: dict[str, Any] = dict(
            algo=a.objective, steps=self.steps, prompts_per_step=self.prompts_per_step, group_size=self.group_size,
            minibatches=updates, max_new_tokens=8, lr=self.lr if lr is None else lr,
            dynamic_sampling=self.dynamic_sampling_for(arm), eval_every=0, seed=seed, eval_problems=1,
            task="guess-check", task_kwargs={"max_operand": self.max_operand})
        for key, value in a.settings:
            kw[key] = getattr(self, value) if isinstance(value, str) and hasattr(self, value) else value
        if eps_high is not None:
            kw["eps_high"] = eps_high
        kw.update(self.rl_overrides)
        return RLConfig(**kw)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["lr_grid"] = {k: list(v) for k, v in self.lr_grid.items()}
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "config.json") -> StudyConfig:
        if not isinstance(d, dict):
            raise LumosError(f"{where} must be an object; the study directory is damaged.")
        if d.get("study_version") != STUDY_VERSION:
            raise LumosError(f"{where} was written by an older 'lumos rl study' (no tuning/evaluation seeds); "
                             "rerun the study with this version to merge it.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise LumosError(f"{where} has unknown study field(s) {', '.join(unknown)}; it was not written by "
                             "'lumos rl study' of this version.")
        return cls(**d)


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


# ------------------------------------------------------------------------------------------------ the study

#: a run: (updates, arm, lr, eps_high or None, seed)
RunKey = tuple[int, str, float, "float | None", int]
Runs = dict[RunKey, list[dict[str, Any]]]


def _derived(row: dict[str, Any]) -> dict[str, Any]:
    """Ratios of the per-step fork counts (NaN when the step had none)."""
    def ratio(a: str, b: str) -> float:
        return row[a] / row[b] if row.get(b) else math.nan

    out = {"rollout_fork_rate": ratio("fork_seqs", "seqs"), "fork_clip_share": ratio("fork_clipped_n", "fork_live_n")}
    out["fork_grad_zeroed"] = 1.0 - ratio("fork_grad_kept", "fork_grad_full") if row.get("fork_grad_full") else math.nan
    return out


def _prompt_tokens(cfg: StudyConfig) -> float:
    """Mean prompt length in tokens (BOS + prompt bytes) of the task's problems."""
    probs = GuessCheckTask(cfg.max_operand).generate(64, seed=1)
    return sum(len(p.prompt.encode()) + 1 for p in probs) / len(probs)


def _train_one(model: nn.Module, cfg: StudyConfig, key: RunKey, eval_set: list[Problem], log: Any
               ) -> list[dict[str, Any]]:
    """One run; returns its history (eval rows merged, cumulative ``compute_flops`` on every row)."""
    from lumos.analysis.flops import from_minimax_config
    from lumos.studies.curves import rl_step_flops

    u, arm, lr, eps, seed = key
    task = GuessCheckTask(cfg.max_operand)
    rl = cfg.rl_config(arm, u, seed, lr=lr, eps_high=eps)
    trainer = RLTrainer(model, task, rl)
    probe = ForkClipProbe(trainer, trainer.tokenizer.encode(task.fork_token)[0])
    trainer.token_stats = probe
    tag = {"algo": arm, "updates": u, "lr": lr, "eps_high": eps, "seed": seed}
    flops, prompt = from_minimax_config(model.config), _prompt_tokens(cfg)
    extra = int(rl.beta > 0) + int(rl.old_logp == "recompute")
    compute = 0.0
    history = [{"step": 0, "seed": seed, "compute_flops": 0.0,
                **evaluate_forks(trainer, eval_set, cfg.eval_samples, seed * 7919)}]
    log({**tag, **history[0]})
    for _ in range(cfg.steps):
        row = {k: v for k, v in trainer.rl_step().items() if k != "sample"}
        row.update(_derived(row))
        compute += rl_step_flops(flops, row, prompt_tokens=prompt, prompts_per_step=cfg.prompts_per_step,
                                 group_size=cfg.group_size, extra_forwards=extra)
        row["compute_flops"] = compute
        if trainer.step % cfg.eval_every == 0 or trainer.step == cfg.steps:
            row.update(evaluate_forks(trainer, eval_set, cfg.eval_samples, seed * 7919 + trainer.step))
        history.append(row)
        log({**tag, **row})
    return history


def _model(cfg: StudyConfig, seed: int) -> nn.Module:
    extra = {} if cfg.router_aux_loss_coef is None else {"router_aux_loss_coef": cfg.router_aux_loss_coef}
    return tiny_hybrid(cfg.hidden, 2, seed=seed, **extra)


def run_keys(cfg: StudyConfig) -> list[RunKey]:
    """Every run of the study, in execution order (per schedule and seed, every arm and grid point)."""
    return [(u, arm, lr, eps, seed) for u in cfg.updates for seed in (*cfg.tune_seeds, *cfg.eval_seeds)
            for arm in cfg.algos for lr, eps in cfg.grid(arm)]


def study_runs(cfg: StudyConfig, log: Any, progress: Any = None) -> Runs:
    """Warm start per seed (shared by every schedule, arm and grid point), then every run of :func:`run_keys`.

    ``log(row)`` receives every metrics row, ``progress(msg)`` one line per run.
    """
    eval_set = GuessCheckTask(cfg.max_operand).generate(cfg.eval_problems, seed=_EVAL_SEED)
    runs: Runs = {}
    warm: dict[int, dict[str, torch.Tensor]] = {}
    keys = run_keys(cfg)
    for i, key in enumerate(keys):
        seed = key[4]
        ws = min((*cfg.tune_seeds, *cfg.eval_seeds)) if cfg.shared_warm_start else seed
        if ws not in warm:
            model = _model(cfg, ws)
            log({"phase": "sft", "seed": ws, **fork_warm_start(model, cfg, ws)})
            warm[ws] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if progress is not None:
            progress(f"[{i + 1}/{len(keys)}] updates {key[0]}, seed {seed}, {key[1]}, lr {key[2]:g}"
                     + ("" if key[3] is None else f", eps_high {key[3]:g}"))
        model = _model(cfg, ws)
        model.load_state_dict(warm[ws])
        runs[key] = _train_one(model, cfg, key, eval_set, log)
    return runs


_TITLE = "lumos rl study — CISPO vs DAPO / GRPO / GSPO / Dr. GRPO on a rare fork token, tuned per arm"


def run_study(cfg: StudyConfig, out: str | Path | None = None,
              progress: Any = None) -> tuple[RunDir, dict[str, list[dict[str, Any]]]]:
    """``lumos rl study``: :func:`study_runs` into a run directory with tables, plots and report.

    Returns the run directory and the tables of :func:`summarise`.
    """
    run = RunDir.create("rl study", cfg.to_dict(), out=out, seed=min((*cfg.tune_seeds, *cfg.eval_seeds)),
                        title=_TITLE)
    with run:
        runs = study_runs(cfg, run.log, progress)
        tables = summarise(runs, cfg)
        report_study(run.report.section("Study"), run, cfg, runs, tables, same_first_rollouts(runs, cfg))
    return run, tables


def _key_of(row: dict[str, Any]) -> RunKey:
    eps = row.get("eps_high")
    return (int(row["updates"]), str(row["algo"]), float(row["lr"]), None if eps is None else float(eps), int(row["seed"]))


def load_runs(run_dir: str | Path) -> tuple[StudyConfig, Runs]:
    """The config and the finished runs of a study directory (also a partial one: a run counts once it has
    its final step). Refuses directories that are not an (unmerged) ``lumos rl study`` run."""
    from lumos.core.io import read_json, read_jsonl

    d = Path(run_dir)
    if not (d / "config.json").is_file() or not (d / "metrics.jsonl").is_file():
        raise LumosError(f"{d} is not a 'lumos rl study' run directory (no config.json and metrics.jsonl); pass "
                         "directories written by 'lumos rl study'.")
    manifest = read_json(d / "manifest.json") if (d / "manifest.json").is_file() else {}
    command = manifest.get("command") if isinstance(manifest, dict) else None
    if command != "rl study":
        raise LumosError(f"{d} is a '{command or 'unknown'}' run, not a 'lumos rl study' run; pass study "
                         "directories only.")
    raw = read_json(d / "config.json")
    if isinstance(raw, dict) and "merged" in raw:
        raise LumosError(f"{d} is itself a merged study (of {', '.join(map(str, raw['merged']))}); merge those "
                         "parts instead, so that no seed is counted twice.")
    cfg = StudyConfig.from_dict(raw, where=f"{d}/config.json")
    by: dict[RunKey, list[dict[str, Any]]] = {}
    for r in read_jsonl(d / "metrics.jsonl"):
        if "algo" in r and "step" in r:
            by.setdefault(_key_of(r), []).append({k: v for k, v in r.items()
                                                  if k not in ("algo", "updates", "lr", "eps_high")})
    runs = {k: h for k, h in by.items() if len(h) == cfg.steps + 1}
    return cfg, runs


def merge_studies(run_dirs: list[str | Path], out: str | Path | None = None
                  ) -> tuple[RunDir, dict[str, list[dict[str, Any]]]]:
    """One report from study directories that split a sweep (by ``updates`` or by seeds).

    The parts must agree on every setting but ``updates``, ``tune_seeds`` and ``eval_seeds``; a directory
    named twice, a run present in two parts, or parts with no finished run are refused.
    """
    if not run_dirs:
        raise LumosError("--merge needs at least one study run directory.")
    resolved = [Path(d).resolve() for d in run_dirs]
    dup = sorted({str(d) for d in resolved if resolved.count(d) > 1})
    if dup:
        raise LumosError(f"--merge names {', '.join(dup)} more than once; each part may be merged once (its seeds "
                         "would be counted twice).")
    parts = [load_runs(d) for d in run_dirs]
    varying = {"updates", "tune_seeds", "eval_seeds"}
    first = {k: v for k, v in parts[0][0].to_dict().items() if k not in varying}
    for d, (c, _) in zip(run_dirs, parts):
        other = {k: v for k, v in c.to_dict().items() if k not in varying}
        if other != first:
            diff = sorted(k for k in first if first[k] != other.get(k))
            raise LumosError(f"Study {d} differs from {run_dirs[0]} in {', '.join(diff)}; merge only parts of one sweep.")
    runs: Runs = {}
    for d, (_, r) in zip(run_dirs, parts):
        for key, h in r.items():
            if key in runs:
                raise LumosError(f"Run {key[1]} (updates {key[0]}, lr {key[2]:g}, seed {key[4]}) is in more than "
                                 f"one part ({d} and an earlier one); merge parts with disjoint seeds or schedules.")
            runs[key] = h
    if not runs:
        raise LumosError(f"None of {', '.join(map(str, run_dirs))} has a finished run; nothing to merge. Let the "
                         "studies finish (or rerun them) first.")
    base = parts[0][0]
    cfg = dataclasses.replace(
        base, updates=tuple(sorted({k[0] for k in runs})),
        tune_seeds=tuple(sorted({s for c, _ in parts for s in c.tune_seeds})),
        eval_seeds=tuple(sorted({s for c, _ in parts for s in c.eval_seeds})))
    run = RunDir.create("rl study", {"merged": [str(d) for d in run_dirs], **cfg.to_dict()}, out=out,
                        seed=min((*cfg.tune_seeds, *cfg.eval_seeds)), title=_TITLE)
    with run:
        for (u, arm, lr, eps, _), h in sorted(runs.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2],
                                                                            kv[0][3] or 0.0, kv[0][4])):
            for row in h:
                run.log({"algo": arm, "updates": u, "lr": lr, "eps_high": eps, **row})
        tables = summarise(runs, cfg)
        sec = run.report.section("Study")
        sec.note(f"Merged from {len(run_dirs)} run directories: {', '.join(map(str, run_dirs))}; "
                 f"{len(runs)} finished runs.")
        report_study(sec, run, cfg, runs, tables, same_first_rollouts(runs, cfg))
    return run, tables


def same_first_rollouts(runs: Runs, cfg: StudyConfig) -> bool:
    """Whether, per schedule and seed, every run logged the same step-0 evaluation (same warm start, same eval
    sampling) and every run without dynamic sampling the same statistics of its first rollout batch (drawn
    before any update: reward, accuracy, length, fork rate)."""
    keys = ("reward", "accuracy", "response_length", "rollout_fork_rate")
    evals: dict[tuple[int, int], set[tuple[Any, ...]]] = {}
    first: dict[tuple[int, int], set[tuple[Any, ...]]] = {}
    for (u, arm, _, _, seed), h in runs.items():
        evals.setdefault((u, seed), set()).add((h[0].get("eval_accuracy"), h[0].get("fork_prob")))
        if not cfg.dynamic_sampling_for(arm):
            row = next((r for r in h if r["step"] == 1), {})
            first.setdefault((u, seed), set()).add(tuple(row.get(k) for k in keys))
    return all(len(v) == 1 for v in (*evals.values(), *first.values()))


# ------------------------------------------------------------------------------------------------ statistics


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


def score(h: list[dict[str, Any]], k: int, key: str = "eval_accuracy") -> float:
    """Mean of ``key`` over the last ``k`` evaluations after step 0 (fewer when the run has fewer)."""
    vals = [r[key] for r in h if r["step"] > 0 and key in r and not math.isnan(r[key])]
    return sum(vals[-k:]) / len(vals[-k:]) if vals else math.nan


def mean_kl(h: list[dict[str, Any]]) -> float:
    """Mean over RL steps of the approx. KL(π_old‖π_θ) per batch (the k3 estimator on the sampled tokens, mean
    over the step's minibatches)."""
    vals = [r["approx_kl"] for r in h if "approx_kl" in r and not math.isnan(r["approx_kl"])]
    return sum(vals) / len(vals) if vals else math.nan


def paired_bootstrap(diffs: list[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95
                     ) -> tuple[float, float, float]:
    """Mean of the paired differences and its bootstrap percentile interval (seeds resampled with replacement).
    One difference: the interval is (NaN, NaN)."""
    d = np.asarray([x for x in diffs if not math.isnan(x)], dtype=np.float64)
    if d.size == 0:
        return math.nan, math.nan, math.nan
    if d.size == 1:
        return float(d[0]), math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, (n_boot, d.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(d.mean()), float(lo), float(hi)


def _pooled(hs: list[list[dict[str, Any]]], num: str, den: str) -> float:
    """Σ num / Σ den over every step of every run (per-step values are minibatch means, × minibatches)."""
    n = d = 0.0
    for h in hs:
        for r in h:
            if den in r and r.get("optimizer_steps"):
                n += r[num] * r["optimizer_steps"]
                d += r[den] * r["optimizer_steps"]
    return n / d if d else math.nan


def _fmt_point(lr: float, eps: float | None) -> str:
    return f"{lr:g}" + ("" if eps is None else f", ε_high {eps:g}")


def choose(runs: Runs, cfg: StudyConfig, u: int, arm: str) -> dict[str, Any] | None:
    """The grid point of ``arm`` with the best mean score on the tuning seeds (ties: the smaller lr), with the
    tuning table rows and whether the optimum is bracketed. None without finished tuning runs."""
    rows = []
    for lr, eps in cfg.grid(arm):
        hs = [runs[(u, arm, lr, eps, s)] for s in cfg.tune_seeds if (u, arm, lr, eps, s) in runs]
        if hs:
            rows.append({"lr": lr, "eps_high": eps, "score": _mean_sd([score(h, cfg.last_k) for h in hs])[0],
                         "kl": _mean_sd([mean_kl(h) for h in hs])[0], "n": len(hs)})
    rows = [r for r in rows if not math.isnan(r["score"])]
    if not rows:
        return None
    best = max(rows, key=lambda r: (r["score"], -r["lr"]))
    notes = []
    for name, values in (("lr", sorted({p[0] for p in cfg.grid(arm)})),
                         ("eps_high", sorted({p[1] for p in cfg.grid(arm) if p[1] is not None}))):
        if len(values) < 2:
            continue
        v = best[name]
        if v == values[0] or v == values[-1]:
            notes.append(f"{name} {v:g} at the grid's {'low' if v == values[0] else 'high'} edge: not bracketed")
    single = len(cfg.grid(arm)) == 1
    return {**best, "rows": rows, "bracketed": not notes and not single,
            "note": "; ".join(notes) if notes else ("one grid point: not tuned" if single else "bracketed")}


def _comparison(runs: Runs, cfg: StudyConfig, u: int, points: dict[str, tuple[float, float | None]], label: str
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-arm rows (evaluation seeds) and paired differences against the first arm, at the given points."""
    seeds = cfg.eval_seeds
    scores: dict[str, dict[int, float]] = {}
    rows = []
    for arm, (lr, eps) in points.items():
        hs = {s: runs[(u, arm, lr, eps, s)] for s in seeds if (u, arm, lr, eps, s) in runs}
        scores[arm] = {s: score(h, cfg.last_k) for s, h in hs.items()}
        if not hs:
            continue
        reached = [next((int(r["step"]) for r in h if r.get("eval_accuracy", -1.0) >= cfg.target), None)
                   for h in hs.values()]
        rows.append({
            "comparison": label, "updates/batch": u, "arm": arm, "lr": _fmt_point(lr, eps), "seeds": len(hs),
            f"accuracy, last {cfg.last_k} evals": _pm(list(scores[arm].values())),
            "approx KL/batch": f"{_mean_sd([mean_kl(h) for h in hs.values()])[0]:.3g}",
            "fork prob start → end": f"{_mean_sd([h[0]['fork_prob'] for h in hs.values()])[0]:.3f} → "
                                     f"{_pm([_last(h, 'fork_prob') for h in hs.values()])}",
            "fork tokens clipped": f"{100 * _pooled(list(hs.values()), 'fork_clipped_n', 'fork_live_n'):.1f} %",
            "fork gradient removed":
                f"{100 * (1 - _pooled(list(hs.values()), 'fork_grad_kept', 'fork_grad_full')):.1f} %",
            "reached target": f"{sum(s is not None for s in reached)}/{len(hs)}",
        })
    paired = []
    arms = list(points)
    if arms:
        ref = arms[0]
        for arm in arms[1:]:
            common = [s for s in seeds if s in scores.get(ref, {}) and s in scores.get(arm, {})]
            d = [scores[ref][s] - scores[arm][s] for s in common]
            if not d:
                continue
            m, lo, hi = paired_bootstrap(d, cfg.n_boot, seed=u)
            verdict = ("one seed: no interval" if math.isnan(lo) else
                       f"{ref} higher" if lo > 0 else f"{arm} higher" if hi < 0 else "tie (interval contains 0)")
            paired.append({"comparison": label, "updates/batch": u, "pair": f"{ref} − {arm}", "seeds": len(d),
                           "Δ accuracy": f"{m:+.3f}", "95% CI": "" if math.isnan(lo) else f"[{lo:+.3f}, {hi:+.3f}]",
                           "per seed": ", ".join(f"{x:+.2f}" for x in d), "verdict": verdict})
    return rows, paired


def summarise(runs: Runs, cfg: StudyConfig) -> dict[str, list[dict[str, Any]]]:
    """The study's tables: ``tuning`` (every grid point on the tuning seeds; the chosen one marked),
    ``summary`` (per arm on the evaluation seeds, for each comparison: tuned, matched lr, matched KL) and
    ``paired`` (differences against the first arm with bootstrap intervals)."""
    tuning, summary, paired = [], [], []
    for u in cfg.updates:
        chosen: dict[str, dict[str, Any]] = {}
        for arm in cfg.algos:
            c = choose(runs, cfg, u, arm)
            if c is None:
                continue
            chosen[arm] = c
            for r in c["rows"]:
                tuning.append({"updates/batch": u, "arm": arm, "lr": _fmt_point(r["lr"], r["eps_high"]),
                               "tune seeds": r["n"], f"accuracy, last {cfg.last_k} evals": f"{r['score']:.3f}",
                               "approx KL/batch": f"{r['kl']:.3g}",
                               "chosen": ("yes — " + c["note"]) if (r["lr"], r["eps_high"]) == (c["lr"], c["eps_high"])
                               else ""})
        comparisons: list[tuple[str, dict[str, tuple[float, float | None]]]] = []
        if chosen:
            comparisons.append(("tuned lr", {a: (c["lr"], c["eps_high"]) for a, c in chosen.items()}))
        elif not cfg.tune_seeds:
            comparisons.append(("shared lr (no tuning seeds)", {}))
        same = {}
        for arm in cfg.algos:
            pts = [p for p in cfg.grid(arm) if p[0] == cfg.lr]
            if pts:
                eps = chosen[arm]["eps_high"] if arm in chosen and any(p[1] == chosen[arm]["eps_high"] for p in pts) \
                    else pts[0][1]
                same[arm] = (cfg.lr, eps)
        if len(same) == len(cfg.algos):
            comparisons.append((f"matched lr {cfg.lr:g}", same))
        kls = [c["kl"] for c in chosen.values() if c["kl"] > 0 and math.isfinite(c["kl"])]
        if len(chosen) == len(cfg.algos) and len(kls) == len(chosen) and len(chosen) > 1:
            target = math.exp(sum(math.log(k) for k in kls) / len(kls))
            matched = {}
            for arm, c in chosen.items():
                ok = [r for r in c["rows"] if r["kl"] > 0 and math.isfinite(r["kl"])]
                best = min(ok, key=lambda r: abs(math.log(r["kl"] / target)))
                matched[arm] = (best["lr"], best["eps_high"])
            comparisons.append((f"matched KL ≈ {target:.3g}", matched))
        for label, points in comparisons:
            if not points:
                points = {a: cfg.grid(a)[0] for a in cfg.algos}
            rows, pairs = _comparison(runs, cfg, u, points, label)
            summary += rows
            paired += pairs
    return {"tuning": tuning, "summary": summary, "paired": paired}


def study_curves(runs: Runs, cfg: StudyConfig, u: int, points: dict[str, tuple[float, float | None]] | None = None,
                 seeds: tuple[int, ...] | None = None, metric: str = "eval_accuracy"
                 ) -> dict[str, list[tuple[list[float], list[float]]]]:
    """(cumulative compute, metric) curves per arm at schedule ``u``: the runs at ``points`` (default each arm's
    tuned point, else its first grid point) on ``seeds`` (default the evaluation seeds)."""
    from lumos.studies.curves import curve_points

    seeds = cfg.eval_seeds if seeds is None else seeds
    if points is None:
        points = {}
        for arm in cfg.algos:
            c = choose(runs, cfg, u, arm)
            points[arm] = (c["lr"], c["eps_high"]) if c else cfg.grid(arm)[0]
    out: dict[str, list[tuple[list[float], list[float]]]] = {}
    for arm, (lr, eps) in points.items():
        hs = [runs[(u, arm, lr, eps, s)] for s in seeds if (u, arm, lr, eps, s) in runs]
        if hs:
            out[arm] = [curve_points(h, lambda r: 0.0, metric) for h in hs]
            for (c, _), h in zip(out[arm], hs):      # compute_flops is logged cumulatively on every row
                c[:] = [float(r["compute_flops"]) for r in h if metric in r and math.isfinite(r[metric])]
    return out


# ------------------------------------------------------------------------------------------------ report


def _plot(runs: Runs, cfg: StudyConfig) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = (("fork_prob", "fork-token probability"), ("eval_accuracy", "eval accuracy (avg@k)"),
            ("fork_grad_zeroed", "share of fork gradient clipped"))
    fig, axes = plt.subplots(len(cfg.updates), len(keys), figsize=(4.2 * len(keys), 2.8 * len(cfg.updates)),
                             squeeze=False)
    for i, u in enumerate(cfg.updates):
        points = {}
        for arm in cfg.algos:
            c = choose(runs, cfg, u, arm)
            points[arm] = (c["lr"], c["eps_high"]) if c else cfg.grid(arm)[0]
        for j, (key, title) in enumerate(keys):
            ax = axes[i][j]
            for arm, (lr, eps) in points.items():
                hs = [runs[(u, arm, lr, eps, s)] for s in cfg.eval_seeds if (u, arm, lr, eps, s) in runs]
                steps = sorted({r["step"] for h in hs for r in h if key in r and not math.isnan(r[key])})
                if not steps:
                    continue
                vals = torch.tensor([[next((r[key] for r in h if r["step"] == s and key in r), math.nan)
                                      for s in steps] for h in hs], dtype=torch.float64)
                mean = vals.nanmean(0)
                ax.plot(steps, mean.tolist(), label=f"{arm} ({_fmt_point(lr, eps)})")
                if vals.shape[0] > 1:
                    sd = torch.sqrt(((vals - mean) ** 2).nanmean(0))
                    ax.fill_between(steps, (mean - sd).tolist(), (mean + sd).tolist(), alpha=0.15)
            ax.set_title(f"{title}, {u} update(s)/batch", fontsize=9)
            ax.set_xlabel("RL step")
            ax.grid(alpha=0.3)
        axes[i][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def report_study(sec: Any, run: RunDir, cfg: StudyConfig, runs: Runs, tables: dict[str, list[dict[str, Any]]],
                 paired_ok: bool) -> None:
    """Describe the study in report section ``sec``: settings, plots (``plots/study.png``, ``plots/curves_u<U>.png``),
    the tuning, comparison and paired tables, and the compute curves; the tables also as ``results.md``."""
    from lumos.studies.curves import curves_figure, fit_curves, format_rows

    arms = "; ".join(f"{a}: {_arm(a).help or 'objective defaults'}" + (", dynamic sampling" if cfg.dynamic_sampling_for(a)
                                                                        else "") for a in cfg.algos)
    grids = "; ".join(f"{a}: lr {', '.join(f'{x:g}' for x in sorted({p[0] for p in cfg.grid(a)}))}"
                      + (f", ε_high {', '.join(f'{e:g}' for e in cfg.eps_high_grid)}" if _arm(a).objective == "cispo"
                         else "") for a in cfg.algos)
    sec.text(
        f"Task guess-check (operands 0..{cfg.max_operand}): a guess, optionally the fork token '?' and a "
        f"verification. Tiny hybrid model (hidden {cfg.hidden}, 2 layers), warm start {cfg.sft_steps} SFT steps "
        f"with every demonstration forking, then {cfg.sft_rare_steps} with {100 * cfg.demo_fork_rate:.0f} % forking. "
        f"RL: {cfg.steps} steps of {cfg.prompts_per_step} prompts × {cfg.group_size} samples, "
        f"{', '.join(map(str, cfg.updates))} optimizer update(s) per rollout batch. Arms — {arms}. Grids — {grids}. "
        f"Tuning seeds {list(cfg.tune_seeds)} choose each arm's point; evaluation seeds {list(cfg.eval_seeds)} "
        f"report it. Metric: eval accuracy avg@{cfg.eval_samples} at temperature 1 on {cfg.eval_problems} problems "
        f"({cfg.eval_problems * cfg.eval_samples} samples) every {cfg.eval_every} steps, averaged over the last "
        f"{cfg.last_k} evaluations of each run. Paired differences: bootstrap 95 % interval over evaluation seeds "
        f"({cfg.n_boot} resamples); an interval containing 0 is a tie. Paired runs: every run of a seed starts "
        "from the same weights with the same problems and sampling seeds — "
        + ("verified (identical step-0 evaluations; identical first rollout batches without dynamic sampling)."
           if paired_ok else "NOT verified: step-0 evaluations or first rollout batches differ."))
    fig = _plot(runs, cfg)
    run.save_figure(fig, "study")
    sec.figure(fig)
    if tables["tuning"]:
        sec.table(tables["tuning"], caption="Tuning: every grid point on the tuning seeds; the chosen point per arm "
                  "(best mean accuracy) and whether it is bracketed by the grid.")
    sec.table(tables["summary"], caption="Evaluation seeds, per comparison and arm. 'fork tokens clipped': "
              "occurrences of '?' with a non-zero advantage whose gradient the objective zeroes (PPO-clip) or caps "
              "(CISPO); 'fork gradient removed': share of their importance-weighted gradient magnitude lost.")
    if tables["paired"]:
        sec.table(tables["paired"], caption="Paired differences (same seed, same warm start), bootstrap 95 % "
                  "intervals over evaluation seeds.")
    md = []
    for name, title in (("tuning", "Tuning (tuning seeds)"), ("summary", "Evaluation seeds, per comparison"),
                        ("paired", "Paired differences (bootstrap 95 % CI over evaluation seeds)")):
        if tables[name]:
            md += [f"### {title}", "", *_markdown(tables[name]), ""]
    for u in cfg.updates:
        curves = study_curves(runs, cfg, u)
        if not curves:
            continue
        rows = fit_curves(curves, n_boot=min(cfg.n_boot, 200))
        fits = format_rows(rows)
        sec.table(fits, caption=f"ScaleRL sigmoid fits, {u} update(s)/batch, tuned points, "
                  "evaluation seeds: R(C) = R0 + (A − R0)/(1 + (C_mid/C)^B), C = rollout + training FLOPs "
                  "(lumos.analysis.flops); bootstrap 95 % intervals over seeds.")
        md += [f"### ScaleRL sigmoid fits, {u} update(s)/batch (tuned points, evaluation seeds)", "",
               *_markdown(fits), ""]
        fig = curves_figure(curves, rows, title=f"accuracy vs compute, {u} update(s)/batch")
        run.save_figure(fig, f"curves_u{u}")
        sec.figure(fig)
    from lumos.core.io import atomic_write_text

    atomic_write_text(run.path / "results.md", "\n".join(md) + "\n")


def _markdown(table: list[dict[str, Any]]) -> list[str]:
    cols = list(dict.fromkeys(k for r in table for k in r))
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols),
            *("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in table)]

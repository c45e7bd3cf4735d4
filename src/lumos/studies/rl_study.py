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
from lumos.rl.tasks.base import Problem
from lumos.rl.tasks.fork import GuessCheckTask
from lumos.rl.trainer import RLTrainer
from lumos.studies.fork_probes import ForkClipProbe, evaluate_forks, fork_probability, fork_warm_start
from lumos.studies.rl_study_stats import (
    RunKey,
    Runs,
    choose,
    compare_at,
    markdown_table,
    mean_kl,
    paired_bootstrap,
    report_study,
    score,
    study_curves,
    summarise,
)

__all__ = ["ARMS", "Arm", "arm_names", "StudyConfig", "fork_warm_start", "fork_probability", "ForkClipProbe",
           "evaluate_forks", "run_keys", "study_runs", "run_study", "load_runs", "merge_studies", "same_first_rollouts",
           "RunKey", "Runs", "score", "mean_kl", "paired_bootstrap", "choose", "compare_at", "summarise", "study_curves",
           "report_study", "markdown_table"]

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
_UPDATES = Satisfies(lambda v: isinstance(v, tuple) and len(v) > 0 and all(is_int(u) and int(u) >= 1 for u in v),
                     "a non-empty list of ints ≥ 1")
_SEEDS = Satisfies(lambda v: isinstance(v, tuple) and all(is_int(u) and int(u) >= 0 for u in v),
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

    def arm(self, name: str) -> Arm:
        """The :class:`Arm` of ``name`` (an objective without study settings when it is not in :data:`ARMS`)."""
        return _arm(name)

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


# ------------------------------------------------------------------------------------------------ the study

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
    return sum(len(str(p.prompt).encode()) + 1 for p in probs) / len(probs)


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


def pool_studies(run_dirs: list[str | Path]) -> tuple[StudyConfig, Runs]:
    """The runs of study directories that split one sweep (by ``updates`` or by seeds), pooled, with the config
    they share (``updates``, ``tune_seeds`` and ``eval_seeds`` the union of the parts'). What ``--merge`` and
    ``lumos rl curves`` read: the parts must agree on every other setting; a directory named twice, a run present
    in two parts, or parts with no finished run are refused."""
    if not run_dirs:
        raise LumosError("Pooling studies needs at least one study run directory.")
    resolved = [Path(d).resolve() for d in run_dirs]
    dup = sorted({str(d) for d in resolved if resolved.count(d) > 1})
    if dup:
        raise LumosError(f"{', '.join(dup)} is named more than once; each part may be pooled once (its seeds "
                         "would be counted twice).")
    parts = [load_runs(d) for d in run_dirs]
    varying = {"updates", "tune_seeds", "eval_seeds"}
    first = {k: v for k, v in parts[0][0].to_dict().items() if k not in varying}
    for d, (c, _) in zip(run_dirs, parts):
        other = {k: v for k, v in c.to_dict().items() if k not in varying}
        if other != first:
            diff = sorted(k for k in first if first[k] != other.get(k))
            raise LumosError(f"Study {d} differs from {run_dirs[0]} in {', '.join(diff)}; pool only parts of one sweep.")
    runs: Runs = {}
    for d, (_, r) in zip(run_dirs, parts):
        for key, h in r.items():
            if key in runs:
                raise LumosError(f"Run {key[1]} (updates {key[0]}, lr {key[2]:g}, seed {key[4]}) is in more than "
                                 f"one part ({d} and an earlier one); pool parts with disjoint seeds or schedules.")
            runs[key] = h
    if not runs:
        raise LumosError(f"None of {', '.join(map(str, run_dirs))} has a finished run; nothing to pool. Let the "
                         "studies finish (or rerun them) first.")
    base = parts[0][0]
    cfg = dataclasses.replace(
        base, updates=tuple(sorted({k[0] for k in runs})),
        tune_seeds=tuple(sorted({s for c, _ in parts for s in c.tune_seeds})),
        eval_seeds=tuple(sorted({s for c, _ in parts for s in c.eval_seeds})))
    return cfg, runs


def merge_studies(run_dirs: list[str | Path], out: str | Path | None = None
                  ) -> tuple[RunDir, dict[str, list[dict[str, Any]]]]:
    """One report from study directories that split a sweep (by ``updates`` or by seeds).

    The parts must agree on every setting but ``updates``, ``tune_seeds`` and ``eval_seeds``; a directory
    named twice, a run present in two parts, or parts with no finished run are refused.
    """
    cfg, runs = pool_studies(run_dirs)
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

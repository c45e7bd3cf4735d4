"""``RLConfig``: every option of an RL run, validated where built; written to ``config.json`` and read back to resume.

What depends on the objective (its hyper-parameters and their defaults, its normaliser, whether dynamic sampling is
on by default) is read from its registration (:func:`lumos.rl.objectives.register_loss`), so a newly registered
objective is usable by name. Fields marked ``objective=True`` are objective hyper-parameters: left at its
RLConfig default (None, or False / 0 for ``unified_mask`` and ``beta``) one means "the objective's default", and
setting one the objective does not take is an error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lumos.core.errors import LumosError
from lumos.core.validation import (
    Problems,
    check_bool,
    check_choice,
    check_float,
    check_nonneg_int,
    check_positive_int,
    check_probability,
)
from lumos.rl.objectives import Objective, available_losses, get_objective

__all__ = ["RLConfig"]


def _f(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class RLConfig:
    """Options of :class:`~lumos.rl.trainer.RLTrainer` (help text in each field's metadata; the CLI reuses it)."""

    algo: str = _f("cispo", "objective: a name registered with lumos.rl.objectives.register_loss", cli=False)
    steps: int = _f(40, "RL steps (rollout batches)")
    prompts_per_step: int = _f(32, "prompts per rollout batch (global, over all processes)")
    group_size: int = _f(8, "samples per prompt (G)")
    minibatches: int = _f(4, "optimizer steps per rollout batch (> 1 is the off-policy regime)")
    max_new_tokens: int = _f(16, "generation limit per response")
    temperature: float = _f(1.0, "sampling temperature (log-probs are of softmax(logits / T))")
    # optimisation
    lr: float = _f(2e-4, "peak learning rate")
    lr_schedule: str = _f("constant", "constant, cosine or linear (decay to lr_min_ratio · lr after warmup)")
    warmup_steps: int = _f(0, "linear warmup, in RL steps")
    lr_min_ratio: float = _f(0.1, "final lr / peak lr for cosine and linear")
    adam_beta1: float = _f(0.9, "AdamW β1 (paper: 0.9)")
    adam_beta2: float = _f(0.95, "AdamW β2 (paper: 0.95)")
    adam_eps: float = _f(1e-15, "AdamW eps (paper: 1e-15)")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    grad_clip: float = _f(1.0, "max global gradient norm (0 = no clipping)")
    # objective
    eps_low: float | None = _f(None, "lower clip (r ≥ 1 − eps_low); default: the objective's", objective=True)
    eps_high: float | None = _f(None, "upper clip (r ≤ 1 + eps_high); default: the objective's", objective=True)
    unified_mask: bool = _f(False, "cispo: multiply by the PPO trust-region mask (paper Eq. 6-7)", objective=True)
    mask_eps_low: float | None = _f(None, "cispo unified mask: lower ε (default: the objective's)", objective=True)
    mask_eps_high: float | None = _f(None, "cispo unified mask: upper ε (default: the objective's)", objective=True)
    beta: float = _f(0.0, "grpo: KL coefficient against the initial policy (0 = no KL)", objective=True)
    loss_args: dict[str, Any] = _f(None, "further hyper-parameters of the objective (its own keyword arguments)",
                                   cli=False)
    advantage_scale: str | None = _f(None, "group, batch or none (see group_advantages); default: the "
                                     "objective's (none for dr_grpo, group otherwise)")
    dynamic_sampling: bool | None = _f(None, "drop groups whose rewards are all equal; auto = the objective's "
                                        "default (on for dapo)")
    dynamic_sampling_max_rounds: int = _f(3, "dynamic sampling: generation rounds per step at most, the first "
                                          "included; refill rounds of fresh prompts run until prompts_per_step "
                                          "groups have reward spread (1 = drop without refill)")
    overlong_cache: int = _f(0, "DAPO soft overlong window in tokens (0 = off)")
    skip_zero_advantage_steps: bool = _f(False, "skip the optimizer step of a minibatch whose advantages are all "
                                         "exactly zero: its only gradient is the MoE load-balancing term (and "
                                         "grpo's KL), which AdamW with eps 1e-15 makes a full-size step; off = the "
                                         "paper's recipe")
    compile_rollouts: bool = _f(False, "lumos models: decode rollouts through the torch.compile-d one-token step "
                                "(compiles once, seconds to a minute; then several times faster at small batch)")
    old_logp: str = _f("rollout", "old log-probs: 'rollout' (sampler's) or 'recompute' (training forward, no grad)")
    # bookkeeping
    eval_every: int = _f(5, "evaluate on held-out problems every N steps (0 = never)")
    eval_problems: int = _f(64, "held-out problems for evaluation")
    eval_samples: int = _f(4, "samples per eval problem at the training temperature (accuracy = mean, the "
                              "paper's avg@k); 0 = greedy decoding")
    checkpoint_every: int = _f(0, "atomic checkpoint every N steps (0 = only at the end)")
    keep_checkpoints: int = _f(2, "checkpoints kept on disk")
    seed: int = _f(0, "seed of problems, sampling and initialisation", cli=False)
    task: str = _f("addition", "task: a registered name (addition, multiplication, countdown, sorting, ...), a "
                   ".jsonl file of prompts/answers, or module:factory")
    task_kwargs: dict[str, Any] = _f(None, "keyword arguments of the task", cli=False)

    def __post_init__(self) -> None:
        if self.task_kwargs is None:
            self.task_kwargs = {}
        if self.loss_args is None:
            self.loss_args = {}
        self._problems().raise_if_any()

    def _problems(self) -> Problems:
        p = Problems("RLConfig")
        if self.algo not in available_losses():
            p.check(check_choice, self.algo, "algo", tuple(available_losses()))
        for name in ("steps", "prompts_per_step", "group_size", "minibatches", "max_new_tokens", "eval_problems",
                     "keep_checkpoints", "dynamic_sampling_max_rounds"):
            p.check(check_positive_int, getattr(self, name), name)
        for name in ("warmup_steps", "eval_every", "checkpoint_every", "overlong_cache", "eval_samples", "seed"):
            p.check(check_nonneg_int, getattr(self, name), name)
        for name in ("temperature", "lr", "adam_eps"):
            p.check(check_float, getattr(self, name), name, 0.0, low_inclusive=False)
        for name in ("adam_beta1", "adam_beta2"):
            p.check(check_probability, getattr(self, name), name, open_high=True)
        for name in ("grad_clip", "weight_decay", "beta"):
            p.check(check_float, getattr(self, name), name, 0.0)
        for name in ("eps_low", "eps_high", "mask_eps_low", "mask_eps_high"):
            p.check(check_float, getattr(self, name), name, 0.0, allow_none=True)
        p.check(check_probability, self.lr_min_ratio, "lr_min_ratio")
        for name in ("unified_mask", "compile_rollouts", "skip_zero_advantage_steps"):
            p.check(check_bool, getattr(self, name), name)
        if self.dynamic_sampling is not None:
            p.check(check_bool, self.dynamic_sampling, "dynamic_sampling")
        p.check(check_choice, self.lr_schedule, "lr_schedule", ("constant", "cosine", "linear"))
        if self.advantage_scale is not None:
            p.check(check_choice, self.advantage_scale, "advantage_scale", ("group", "batch", "none"))
        p.check(check_choice, self.old_logp, "old_logp", ("rollout", "recompute"))
        p.require(isinstance(self.task, str) and bool(self.task), "The 'task' parameter of RLConfig must be a task "
                  f"name, path.jsonl or module:factory. Got {self.task!r} instead.")
        if not isinstance(self.task_kwargs, dict):
            p.require(False, f"The 'task_kwargs' parameter of RLConfig must be a dict. Got {self.task_kwargs!r} instead.")
        if not p.items and self.overlong_cache > self.max_new_tokens:
            p.require(False, f"The 'overlong_cache' parameter of RLConfig must be ≤ max_new_tokens "
                      f"({self.max_new_tokens}). Got {self.overlong_cache} instead.")
        if not isinstance(self.loss_args, dict):
            p.require(False, f"The 'loss_args' parameter of RLConfig must be a dict. Got {self.loss_args!r} instead.")
        elif not p.items:
            self._objective_problems(p)
        return p

    def _objective_problems(self, p: Problems) -> None:
        """Objective hyper-parameters set here must be ones the objective takes."""
        obj = self.objective
        for name in _OBJECTIVE_FIELDS:
            value = getattr(self, name)
            if value != _OBJECTIVE_FIELDS[name] and name not in obj.params:
                takers = [a for a in available_losses() if name in get_objective(a).params]
                p.require(False, f"The '{name}' parameter of RLConfig is a hyper-parameter of "
                          f"{', '.join(takers) or 'no registered objective'}, not of {self.algo!r}. Got {name}="
                          f"{value!r}. Leave it unset or choose one of those objectives.")
        for name in self.loss_args:
            if name not in obj.params or name in _OBJECTIVE_FIELDS:
                own = [k for k in obj.params if k not in _OBJECTIVE_FIELDS]
                p.require(False, f"The 'loss_args' parameter of RLConfig names {name!r}, which is "
                          + (f"the RLConfig field {name!r}; set that instead." if name in _OBJECTIVE_FIELDS else
                             f"not a hyper-parameter of {self.algo!r} (its own: {', '.join(own) or 'none'})."))

    # resolved values -------------------------------------------------------------------------------------------
    @property
    def objective(self) -> Objective:
        """The registration of ``algo``."""
        return get_objective(self.algo)

    @property
    def clip(self) -> dict[str, Any]:
        """The objective's clip keyword arguments (those it takes) with its defaults filled in."""
        kw = self.loss_kwargs()
        return {k: kw[k] for k in ("eps_low", "eps_high") if k in kw}

    @property
    def resolved_advantage_scale(self) -> str:
        """``advantage_scale``, or the objective's default when unset."""
        return self.objective.advantage_scale if self.advantage_scale is None else self.advantage_scale

    @property
    def use_dynamic_sampling(self) -> bool:
        return self.objective.dynamic_sampling if self.dynamic_sampling is None else bool(self.dynamic_sampling)

    def loss_kwargs(self) -> dict[str, Any]:
        """Every hyper-parameter of the objective: the value set here, else the objective's default."""
        kw = dict(self.objective.defaults)
        for name in _OBJECTIVE_FIELDS:
            if name in kw and getattr(self, name) != _OBJECTIVE_FIELDS[name]:
                kw[name] = getattr(self, name)
        kw.update(self.loss_args)
        return kw

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RLConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise LumosError(f"Unknown RLConfig field(s) {', '.join(unknown)}. Remove them from the config.")
        return cls(**d)


#: the fields that are objective hyper-parameters (see the module docstring) and their "unset" RLConfig defaults
_OBJECTIVE_FIELDS = {f.name: f.default for f in dataclasses.fields(RLConfig) if f.metadata.get("objective")}

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
from lumos.core.registry import Registered
from lumos.core.validation import (
    NONNEG,
    NONNEG_INT,
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
)
from lumos.rl.objectives import LOSSES, Objective, available_losses, get_objective

__all__ = ["RLConfig", "DataConfig", "ModelOptions", "MODEL_DTYPES"]


def _f(default: Any, help: str, *accepted: Constraint | None, **kw: Any) -> Any:
    """A field with its default, help text and accepted values (see :func:`lumos.core.validation.constraint`)."""
    return field(default=default, metadata=constraint(*accepted, help=help, **kw))


_BETA = Interval(float, 0, 1, closed="left")
_TASK = Satisfies(lambda v: isinstance(v, str) and bool(v.strip()), "a task name, a .jsonl path or module:factory")


@dataclass
class RLConfig:
    """Options of :class:`~lumos.rl.trainer.RLTrainer` (help text in each field's metadata; the CLI reuses it)."""

    algo: str = _f("cispo", "objective: a name registered with lumos.rl.objectives.register_loss", Registered(LOSSES), cli=False)
    steps: int = _f(40, "RL steps (rollout batches)", POSITIVE_INT)
    prompts_per_step: int = _f(32, "prompts per rollout batch (global, over all processes)", POSITIVE_INT)
    group_size: int = _f(8, "samples per prompt (G)", Interval(int, 2, None, closed="left"))
    minibatches: int = _f(4, "optimizer steps per rollout batch (> 1 is the off-policy regime)", POSITIVE_INT)
    max_new_tokens: int = _f(16, "generation limit per response", POSITIVE_INT)
    temperature: float = _f(1.0, "sampling temperature (log-probs are of softmax(logits / T))", POSITIVE)
    top_k: int | None = _f(None, "rollouts sample from the k most likely tokens (as lumos generate; the recorded "
                           "log-probs stay those of the full distribution); default: no limit", POSITIVE_INT, None)
    top_p: float | None = _f(None, "rollouts sample from the smallest set of tokens with probability mass ≥ p "
                             "(nucleus, after top_k); default: no limit", Interval(float, 0, 1, closed="right"), None)
    # optimisation
    lr: float = _f(2e-4, "peak learning rate", POSITIVE)
    lr_schedule: str = _f("constant", "constant, cosine or linear (decay to lr_min_ratio · lr after warmup)", Options(str, ("constant", "cosine", "linear")))
    warmup_steps: int = _f(0, "linear warmup, in RL steps", NONNEG_INT)
    lr_min_ratio: float = _f(0.1, "final lr / peak lr for cosine and linear", PROBABILITY)
    adam_beta1: float = _f(0.9, "AdamW β1 (paper: 0.9)", _BETA)
    adam_beta2: float = _f(0.95, "AdamW β2 (paper: 0.95)", _BETA)
    adam_eps: float = _f(1e-15, "AdamW eps (paper: 1e-15)", POSITIVE)
    weight_decay: float = _f(0.0, "AdamW weight decay", NONNEG)
    grad_clip: float = _f(1.0, "max global gradient norm (0 = no clipping)", NONNEG)
    # objective
    eps_low: float | None = _f(None, "lower clip (r ≥ 1 − eps_low); default: the objective's", NONNEG, None, objective=True)
    eps_high: float | None = _f(None, "upper clip (r ≤ 1 + eps_high), a margin above 1 for every objective. For "
                                "cispo TRL's epsilon_high is the absolute cap instead (TRL epsilon_high=5.0 is "
                                "lumos eps_high=4.0); for grpo/dapo it means the same as TRL's. Default: the "
                                "objective's", NONNEG, None, objective=True)
    unified_mask: bool = _f(False, "cispo: multiply by the PPO trust-region mask (paper Eq. 6-7)", Boolean(), objective=True)
    mask_eps_low: float | None = _f(None, "cispo unified mask: lower ε (default: the objective's)", NONNEG, None, objective=True)
    mask_eps_high: float | None = _f(None, "cispo unified mask: upper ε (default: the objective's)", NONNEG, None, objective=True)
    beta: float = _f(0.0, "grpo: KL coefficient against the initial policy (0 = no KL)", NONNEG, objective=True)
    loss_args: dict[str, Any] = _f(None, "further hyper-parameters of the objective (its own keyword arguments)", InstanceOf(dict),
                                   cli=False)
    advantage_scale: str | None = _f(None, "group, batch or none (see group_advantages); default: the objective's "
                                     "(none for dr_grpo, group otherwise)", Options(str, ("group", "batch", "none")),
                                     None)
    dynamic_sampling: bool | None = _f(None, "drop groups whose rewards are all equal; auto = the objective's "
                                        "default (on for dapo)", Boolean(), None)
    dynamic_sampling_max_rounds: int = _f(3, "dynamic sampling: generation rounds per step at most, the first "
                                          "included; refill rounds of fresh prompts run until prompts_per_step "
                                          "groups have reward spread (1 = drop without refill)", POSITIVE_INT)
    overlong_cache: int = _f(0, "DAPO soft overlong window in tokens (0 = off)", NONNEG_INT)
    skip_zero_advantage_steps: bool = _f(False, "skip the optimizer step of a minibatch whose advantages are all "
                                         "exactly zero: its only gradient is the MoE load-balancing term (and "
                                         "grpo's KL), which AdamW with eps 1e-15 makes a full-size step; off = the "
                                         "paper's recipe", Boolean())
    compile_rollouts: bool = _f(False, "lumos models: decode rollouts through the torch.compile-d one-token step "
                                "(compiles once, seconds to a minute; then several times faster at small batch)", Boolean())
    old_logp: str = _f("rollout", "old log-probs: 'rollout' (sampler's) or 'recompute' (training forward, no grad)", Options(str, ("rollout", "recompute")))
    # bookkeeping
    eval_every: int = _f(5, "evaluate on held-out problems every N steps (0 = never)", NONNEG_INT)
    eval_problems: int = _f(64, "held-out problems for evaluation", POSITIVE_INT)
    eval_samples: int = _f(4, "samples per eval problem at the training temperature (accuracy = mean, the "
                              "paper's avg@k); 0 = greedy decoding", NONNEG_INT)
    checkpoint_every: int = _f(0, "atomic checkpoint every N steps (0 = only at the end)", NONNEG_INT)
    keep_checkpoints: int = _f(2, "checkpoints kept on disk", POSITIVE_INT)
    seed: int = _f(0, "seed of problems, sampling and initialisation", NONNEG_INT, cli=False)
    task: str = _f("addition", "task: a registered name (addition, multiplication, countdown, sorting, ...), a "
                   ".jsonl file of prompts/answers, or module:factory", _TASK)
    task_kwargs: dict[str, Any] = _f(None, "keyword arguments of the task", InstanceOf(dict), cli=False)

    def __post_init__(self) -> None:
        if self.task_kwargs is None:
            self.task_kwargs = {}
        if self.loss_args is None:
            self.loss_args = {}
        self._problems().raise_if_any()

    def _problems(self) -> Problems:
        p = Problems("RLConfig")
        p.fields(self)  # every constraint declared above
        if p.ok("overlong_cache", "max_new_tokens") and self.overlong_cache > self.max_new_tokens:
            p.param("overlong_cache", f"≤ max_new_tokens ({self.max_new_tokens})", self.overlong_cache)
        if p.ok("minibatches", "prompts_per_step", "group_size") \
                and self.minibatches > self.prompts_per_step * self.group_size:
            p.param("minibatches", "≤ the samples of a rollout batch (prompts_per_step × group_size = "
                    f"{self.prompts_per_step * self.group_size})", self.minibatches,
                    fix="Each optimizer step needs at least one sample: lower it or raise the batch.")
        if p.ok("unified_mask") and not self.unified_mask:
            for name in ("mask_eps_low", "mask_eps_high"):
                if p.ok(name) and getattr(self, name) is not None:
                    p.param(name, "None unless unified_mask=True (it is the unified mask's ε)", getattr(self, name),
                            fix="Set unified_mask=True, or leave it unset.")
        if not p.items:
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


def _utf8(v: object) -> bool:
    """Text that encodes as UTF-8 (a lone surrogate raises UnicodeEncodeError, a ValueError: read as False)."""
    if not isinstance(v, str):
        return False
    v.encode("utf-8")
    return True


def _is_device(v: object) -> bool:
    return isinstance(v, str) and (v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit()))


MODEL_DTYPES = ("auto", "float32", "bfloat16", "float16")
_SPECS = Satisfies(lambda v: isinstance(v, list) and all(isinstance(r, str) and r for r in v),
                   "a list of PATH.py:FUNC or module:FUNC specs")
_WEIGHTS = Satisfies(lambda v: isinstance(v, list) and all(Interval(float, None, None).is_satisfied_by(w) for w in v),
                     "a list of finite numbers")
_NAME = Satisfies(lambda v: isinstance(v, str) and bool(v), "a column name")
_TEXT = Satisfies(_utf8, "UTF-8 text (no lone surrogates)")
_DEVICE = Satisfies(_is_device, "auto, cpu, cuda, mps or cuda:N")
_TARGETS = Satisfies(lambda v: isinstance(v, str) and bool(v.strip(", ")),
                     "all-linear or comma-separated module names")


@dataclass
class DataConfig:
    """Where prompts and rewards come from, and how prompts are rendered (``config.json`` key ``data``).

    Applies to data-file tasks (``--task FILE``); ``chat_template`` and ``system_prompt`` to every task whose
    model has its own tokenizer.
    """

    reward: list[str] = _f(None, "reward function PATH.py:FUNC or module:FUNC, called TRL's way "
                           "FUNC(prompts=, completions=, completion_ids=, **columns) -> list[float | None] "
                           "(repeatable; default: compare with the 'answer' column)", _SPECS)
    reward_weights: list[float] | None = _f(None, "one weight per --reward (default: all 1)", _WEIGHTS, None)
    prompt_column: str = _f("prompt", "the data column holding the prompt (text or chat messages)", _NAME)
    eval_data: str | None = _f(None, "held-out evaluation data (same format and columns); default: hold out "
                               "--eval-fraction of the training rows", _TEXT, None)
    eval_fraction: float = _f(0.1, "without --eval-data: the seeded fraction of data rows held out for evaluation "
                              "(never trained on; 0 = none, then --eval-every 0)", Interval(float, 0, 1, closed="left"))
    chat_template: bool = _f(True, "render prompts with the tokenizer's chat template (text prompts become a user "
                             "message; TRL feeds text raw); off = --no-chat-template, for base models", Boolean())
    system_prompt: str | None = _f(None, "a system message put before every prompt (needs a chat template)", _TEXT,
                                   None)

    def __post_init__(self) -> None:
        if self.reward is None:
            self.reward = []
        p = Problems("DataConfig")
        p.fields(self)  # every constraint declared above
        if p.ok("reward", "reward_weights") and self.reward_weights is not None \
                and len(self.reward_weights) != len(self.reward):
            p.param("reward_weights", f"one weight per reward function ({len(self.reward)})",
                    f"{len(self.reward_weights)} weight(s)")
        p.raise_if_any()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataConfig:
        return _from_dict(cls, d)


#: The --dtype choices of ModelOptions ("auto": bf16 on CUDA, float32 on CPU).


@dataclass
class ModelOptions:
    """How the model is placed and trained (``config.json`` key ``model_options``)."""

    device: str = _f("auto", "where a transformers model runs: auto (cuda when present, else cpu), cpu, cuda, cuda:N "
                     "(lumos's own models train on the CPU; on GPUs under torchrun with --fsdp)", _DEVICE)
    dtype: str = _f("auto", "weights dtype: auto (transformers models: bfloat16 on cuda, float32 on cpu; lumos models: "
                    "their own), float32, bfloat16, float16", Options(str, MODEL_DTYPES))
    gradient_checkpointing: bool = _f(False, "recompute activations in the backward pass (transformers models)",
                                      Boolean())
    lora_r: int = _f(0, "train a peft LoRA adapter of this rank instead of every weight (0 = full fine-tuning)",
                     NONNEG_INT)
    lora_alpha: float | None = _f(None, "LoRA alpha (default: 2 × lora_r)", POSITIVE, None)
    lora_targets: str = _f("all-linear", "modules the LoRA adapter wraps: all-linear or comma-separated names "
                           "(e.g. q_proj,v_proj)", _TARGETS)

    def __post_init__(self) -> None:
        p = Problems("ModelOptions")
        p.fields(self)  # every constraint declared above
        p.raise_if_any()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelOptions:
        return _from_dict(cls, d)

    def resolved_device(self) -> str:
        """``device`` with ``auto`` resolved; a CUDA device on a machine without one is an error."""
        from lumos.models.transformers_lm import resolve_device

        return resolve_device(self.device)


def _from_dict(cls: Any, d: Any) -> Any:
    if not isinstance(d, dict):
        raise LumosError(f"The stored {cls.__name__} must be an object; got {type(d).__name__}. The run directory "
                         "is damaged.")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise LumosError(f"Unknown {cls.__name__} field(s) {', '.join(unknown)}. Remove them from the config.")
    return cls(**d)

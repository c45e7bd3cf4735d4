"""The task / verifier interface every RL environment implements.

A :class:`Task` generates :class:`Problem` s (a prompt and the hidden answer) and scores completions with
exact verifiers, returning one :class:`Reward` per completion. Scoring takes a batch so that expensive
verifiers (sandboxed code execution) can run a whole rollout group in parallel. Tasks register by name
with :func:`register_task`; ``lumos rl train --task NAME`` looks them up with :func:`get_task`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from lumos.core.errors import LumosError
from lumos.core.registry import Registry
from lumos.rl.plugins import call_user

__all__ = ["Problem", "Reward", "Task", "TASKS", "register_task", "get_task", "available_tasks"]


@dataclass
class Problem:
    """One prompt with its hidden answer; ``meta`` holds whatever the verifier needs (tests, numbers...).

    ``prompt`` is text, or a list of chat messages (``[{"role": "user", "content": ...}]``) that the policy's
    tokenizer renders with its chat template (:func:`lumos.models.tokenizer.encode_prompt`)."""

    prompt: str | list[dict[str, str]]
    answer: Any = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reward:
    """The verdict on one completion: ``total`` is what the trainer optimises.

    ``correct`` is the task's notion of success (for accuracy curves); ``format`` is the format part of the
    reward; ``info`` carries diagnostics (e.g. tests passed, exit reason).
    """

    total: float
    correct: bool
    format: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


class Task(abc.ABC):
    """Base class of RL tasks."""

    #: registry name, e.g. ``"addition"``
    name: str = ""
    #: whether :meth:`score` takes ``completion_ids=`` (the sampled token ids, for TRL-style reward functions)
    takes_completion_ids: bool = False

    @abc.abstractmethod
    def generate(self, n: int, seed: int) -> list[Problem]:
        """``n`` problems, deterministic in ``seed``."""

    @abc.abstractmethod
    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Reward]:
        """One :class:`Reward` per (problem, completion) pair, in order."""

    def held_out(self, n: int, seed: int) -> list[Problem]:
        """``n`` problems for evaluation, never ones the trainer trains on.

        The default draws from :meth:`generate` with ``seed`` (the trainer passes a seed no training step uses),
        which suits tasks that generate fresh problems; tasks over a fixed list of problems override it."""
        return self.generate(n, seed)

    def demonstration(self, problem: Problem) -> str:
        """A correct completion for supervised warm start; tasks without one raise ``NotImplementedError``."""
        raise NotImplementedError(f"task {self.name!r} has no demonstrations")


#: the tasks: name → factory (a Task class or a function returning a Task)
TASKS: Registry[Callable[..., Task]] = Registry("task", param="task", expects=callable)
_F = TypeVar("_F", bound=Callable[..., Task])


def register_task(name: str, *, replace: bool = False) -> Callable[[_F], _F]:
    """Register a task factory (class or function) under ``name`` (a taken name is an error unless ``replace``);
    the decorator returns the factory unchanged (a class stays that class for type checkers)."""
    return cast("Callable[[_F], _F]", TASKS.register(name, replace=replace))   # it returns its argument itself


def available_tasks() -> list[str]:
    """The registered task names, sorted."""
    return sorted(TASKS.names())


def get_task(name: str, **kwargs: Any) -> Task:
    """Build the task registered as ``name`` (an unknown name lists the known ones and close matches)."""
    return call_with_kwargs(TASKS.get(name), kwargs, f"task {name!r}")


def call_with_kwargs(factory: Callable[..., Any], kwargs: dict[str, Any], what: str) -> Any:
    """``factory(**kwargs)``; keyword names it does not take are a clear error listing the ones it does."""
    import inspect

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    if params and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        known = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n != "self"]
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise LumosError(f"Unknown argument(s) {', '.join(unknown)} for {what}; it takes "
                             f"{', '.join(known) or 'none'} (pass them with --task-arg KEY=VALUE).")
    required = [n for n, p in params.items() if p.default is p.empty and n != "self"
                and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n not in kwargs]
    if required:
        raise LumosError(f"{what} needs the argument(s) {', '.join(required)}; pass them with --task-arg KEY=VALUE.")
    return call_user(factory, what, **kwargs)

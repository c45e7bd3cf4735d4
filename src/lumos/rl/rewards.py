"""Reward functions TRL's way: ``fn(prompts=..., completions=..., completion_ids=..., **columns) -> list[float]``.

TRL's ``GRPOTrainer`` calls every reward function once per batch with keyword lists of equal length N:
``prompts`` (text, or chat-message lists), ``completions`` (text; for chat-message prompts a one-message
list ``[{"role": "assistant", "content": text}]``), ``completion_ids`` (token-id lists) and every other dataset
column by its name (e.g. ``answer``). It returns N floats; ``None`` skips that function for that sample. The
weighted sum over the functions that did not skip is the reward (``reward_weights``, default all 1); a sample
every function skipped is *unscorable*: its reward is NaN, it is left out of its group's baseline and its
advantage is 0 (TRL does the same). :class:`RewardFunctions` follows this, with two departures, both stricter:

- a function without ``**kwargs`` is passed only the keywords it names (TRL would raise ``TypeError``);
- a function that raises, returns the wrong number of values, a non-number, or NaN/inf stops the run with one
  error naming the function and the sample (TRL turns NaN into "skipped" silently): a reward bug should not
  train quietly on wrong rewards.

TRL also passes ``trainer_state``, ``log_extra`` and ``log_metric``; lumos does not (a function written for
TRL takes ``**kwargs`` and is unaffected unless it uses them).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

from lumos.core.errors import LumosError, one_line
from lumos.core.validation import check_float
from lumos.rl.plugins import call_user

__all__ = ["RewardFunctions", "load_reward_functions", "REWARD_ARGS"]


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


#: the keyword arguments every reward function receives from the trainer (data columns may not take these names)
REWARD_ARGS = ("prompts", "completions", "completion_ids")


class RewardFunctions:
    """Weighted TRL-style reward functions (see the module docstring).

    Args:
        funcs: callables ``fn(prompts=, completions=, completion_ids=, **columns) -> list[float | None]``.
        weights: one finite weight per function (default: all 1).
    """

    def __init__(self, funcs: Sequence[Callable[..., Any]], weights: Sequence[float] | None = None) -> None:
        funcs = list(funcs)
        if not funcs:
            raise LumosError("RewardFunctions needs at least one reward function.")
        for fn in funcs:
            if not callable(fn):
                raise LumosError(f"A reward function must be callable; got {type(fn).__name__} {one_line(repr(fn), 60)}.")
        if weights is None:
            weights = [1.0] * len(funcs)
        weights = list(weights)
        if len(weights) != len(funcs):
            raise LumosError(f"{len(weights)} reward weight(s) for {len(funcs)} reward function(s); give one weight "
                             "per --reward (in the same order).")
        for i, w in enumerate(weights):
            check_float(w, f"reward_weights[{i}]", owner="RewardFunctions")
        self.weights = [float(w) for w in weights]
        self.funcs = funcs
        self.names = [_name(f) for f in funcs]
        self._accepts = [self._keywords(f) for f in funcs]

    @staticmethod
    def _keywords(fn: Callable[..., Any]) -> set[str] | None:
        """The keyword names ``fn`` takes, or None when it takes ``**kwargs`` (or cannot be inspected)."""
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return None
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def per_function(self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[list[int]],
                     columns: dict[str, Sequence[Any]]) -> list[list[float | None]]:
        """Each function's N rewards (None = skipped), checked (see the module docstring)."""
        n = len(prompts)
        kwargs = {**{k: list(v) for k, v in columns.items()}, "prompts": list(prompts),
                  "completions": list(completions), "completion_ids": [list(c) for c in completion_ids]}
        out = []
        for fn, name, accepts in zip(self.funcs, self.names, self._accepts):
            kw = kwargs if accepts is None else {k: v for k, v in kwargs.items() if k in accepts}
            values = call_user(fn, f"The reward function {name} (first prompt {one_line(repr(prompts[0]), 60)})",
                               **kw)
            out.append(self._check(values, n, name))
        return out

    @staticmethod
    def _check(values: Any, n: int, name: str) -> list[float | None]:
        if hasattr(values, "tolist") and not isinstance(values, (list, tuple)):
            values = values.tolist()            # a tensor or array
        if not isinstance(values, (list, tuple)):
            raise LumosError(f"The reward function {name} returned {type(values).__name__}; it must return a list of "
                             f"{n} floats (None to skip a sample).")
        if len(values) != n:
            raise LumosError(f"The reward function {name} returned {len(values)} rewards for {n} completions; return "
                             "exactly one per completion (None to skip one).")
        checked: list[float | None] = []
        for i, v in enumerate(values):
            if v is None:
                checked.append(None)
                continue
            if not hasattr(v, "__float__") or isinstance(v, complex):
                raise LumosError(f"The reward function {name} returned {type(v).__name__} "
                                 f"{one_line(repr(v), 40)} for completion {i}; return floats (None to skip).")
            x = float(v)
            if not math.isfinite(x):
                raise LumosError(f"The reward function {name} returned {x} for completion {i}; return a finite "
                                 "float, or None to skip that sample.")
            checked.append(x)
        return checked

    def combine(self, per_function: list[list[float | None]]) -> list[float]:
        """Weighted sums over the functions that did not skip; NaN where every function skipped."""
        out = []
        for i in range(len(per_function[0]) if per_function else 0):
            terms = [w * v for w, col in zip(self.weights, per_function) if (v := col[i]) is not None]
            out.append(sum(terms) if terms else math.nan)
        return out


def load_reward_functions(specs: Sequence[str], weights: Sequence[float] | None = None) -> RewardFunctions:
    """:class:`RewardFunctions` from ``--reward`` specs (``PATH.py:FUNC`` or ``module:FUNC``, see
    :func:`lumos.rl.plugins.load_object`)."""
    from lumos.rl.plugins import load_object

    return RewardFunctions([load_object(s, "--reward") for s in specs], weights)

"""Shared pieces of the built-in tasks: reward composition and seeded problem streams."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from lumos.core.errors import bad_param
from lumos.rl.tasks.base import Problem, Reward, Task

__all__ = ["VerifiedTask", "compose_reward", "check_int"]


def check_int(name: str, value: object, low: int, high: int, owner: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise bad_param(name, f"an int in [{low}, {high}]", value, owner=owner)
    return value


def compose_reward(correct: bool, well_formed: bool, format_weight: float, info: dict | None = None) -> Reward:
    """total = 1 if correct, else ``format_weight`` if the completion is well formed, else 0."""
    total = 1.0 if correct else (format_weight if well_formed else 0.0)
    return Reward(total=total, correct=bool(correct), format=1.0 if well_formed else 0.0, info=dict(info or {}))


class VerifiedTask(Task):
    """A task whose problems come from ``_make(rng)`` and whose verdict is ``_verify(problem, text)``.

    ``_verify`` returns ``(correct, well_formed, info)``. Completions are stripped of surrounding whitespace.
    """

    def __init__(self, format_weight: float = 0.1) -> None:
        if not isinstance(format_weight, (int, float)) or not 0.0 <= format_weight < 1.0:
            raise bad_param("format_weight", "a float in [0, 1)", format_weight, owner=type(self).__name__)
        self.format_weight = float(format_weight)

    _make: Callable[[random.Random], Problem]

    def _verify(self, problem: Problem, text: str) -> tuple[bool, bool, dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def generate(self, n: int, seed: int) -> list[Problem]:
        check_int("n", n, 0, 10**9, type(self).__name__)
        rng = random.Random(f"{self.name}:{seed}")
        return [self._make(rng) for _ in range(n)]

    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Reward]:
        if len(problems) != len(completions):
            raise bad_param("completions", f"one completion per problem ({len(problems)})", len(completions),
                            owner=f"{type(self).__name__}.score")
        out = []
        for p, c in zip(problems, completions):
            correct, ok, info = self._verify(p, c.strip())
            out.append(compose_reward(correct, ok, self.format_weight, info))
        return out

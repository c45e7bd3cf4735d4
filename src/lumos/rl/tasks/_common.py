"""Shared pieces of the built-in tasks: reward composition and seeded problem streams."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from lumos.core.errors import bad_param
from lumos.core.validation import check_int, check_probability
from lumos.rl.tasks.base import Problem, Reward, Task

__all__ = ["VerifiedTask", "compose_reward"]


def compose_reward(correct: bool, well_formed: bool, format_weight: float, info: dict | None = None) -> Reward:
    """total = 1 if correct, else ``format_weight`` if the completion is well formed, else 0."""
    total = 1.0 if correct else (format_weight if well_formed else 0.0)
    return Reward(total=total, correct=bool(correct), format=1.0 if well_formed else 0.0, info=dict(info or {}))


class VerifiedTask(Task):
    """A task whose problems come from ``_make(rng)`` and whose verdict is ``_verify(problem, text)``.

    ``_verify`` returns ``(correct, well_formed, info)``. Completions are stripped of surrounding whitespace.
    A ``_verify`` that raises on a completion (e.g. ``int()`` of 5,000 digits) scores it 0 with
    ``info["error"]``: a reward function never raises into the trainer.
    """

    def __init__(self, format_weight: float = 0.1) -> None:
        self.format_weight = check_probability(format_weight, "format_weight", owner=type(self).__name__,
                                               open_high=True)

    _make: Callable[[random.Random], Problem]

    def _verify(self, problem: Problem, text: str) -> tuple[bool, bool, dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def generate(self, n: int, seed: int) -> list[Problem]:
        check_int(n, "n", 0, 10**9, owner=type(self).__name__)
        rng = random.Random(f"{self.name}:{seed}")
        return [self._make(rng) for _ in range(n)]

    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Reward]:
        if len(problems) != len(completions):
            raise bad_param("completions", f"one completion per problem ({len(problems)})", len(completions),
                            owner=f"{type(self).__name__}.score")
        out = []
        for p, c in zip(problems, completions):
            try:
                correct, ok, info = self._verify(p, c.strip())
            except Exception as exc:  # noqa: BLE001 - a completion must never raise into the trainer
                correct, ok, info = False, False, {"error": f"{type(exc).__name__}: {exc}"[:300]}
            out.append(compose_reward(correct, ok, self.format_weight, info))
        return out

"""Shared pieces of the sandboxed code tasks: fenced-code extraction and a task that owns a sandbox pool."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any

from lumos.core.errors import bad_param
from lumos.rl.tasks.base import Problem, Reward, Task
from lumos.sandbox import SandboxJob, SandboxLimits, SandboxPool, Verdict

__all__ = ["extract_code_block", "parses", "SandboxTask", "verdict_info", "MAX_COMPLETION_CHARS", "zero_reward"]

#: Longest completion a code task reads (characters); longer ones get reward 0 before any parsing.
MAX_COMPLETION_CHARS = 100_000
_FENCE = re.compile(r"```([A-Za-z0-9_+-]*)[ \t]*\n(.*?)\n?```", re.S)
_PYTHON = ("python", "py", "")


def zero_reward(reason: str, error: str | None = None) -> Reward:
    """Reward 0 for a completion that was not run, with why (``info["exit_reason"]``, ``info["error"]``)."""
    return Reward(0.0, False, 0.0, {"exit_reason": reason, **({"error": error[:300]} if error else {})})


def parses(code: str, mode: str = "exec") -> bool:
    """Whether ``code`` is Python; any failure of the parser (too deep, too large, bad characters) is a no."""
    try:
        ast.parse(code, mode=mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return False
    return True


def extract_code_block(text: str, languages: tuple[str, ...] = _PYTHON) -> tuple[str | None, bool]:
    """The first fenced block in one of ``languages`` → ``(code, well_formed)``.

    ``well_formed`` is True when the block is closed and, for Python, parses (:func:`parses`: a parser
    that fails in any way, e.g. ``RecursionError`` on deep nesting, means no). An unclosed fence or no fence
    at all gives ``(None, False)``. Each fence is matched once (the lazy body stops at the next fence), so
    the scan is linear in ``len(text)``; callers bound the text (:data:`MAX_COMPLETION_CHARS`).
    """
    for m in _FENCE.finditer(text):
        lang = m.group(1).lower()
        if lang in languages:
            code = m.group(2)
            return code, (lang not in _PYTHON or parses(code))
    return None, False


class SandboxTask(Task):
    """Owns a lazily started pool; subclasses build one job (or an early reward) per completion.

    :meth:`score` never raises for what a completion holds: one longer than :data:`MAX_COMPLETION_CHARS`, or
    one whose host-side parsing fails in any way (a ``RecursionError`` in the parser, ...), gets reward 0
    with the reason in ``info``; only a misuse (mismatched lengths, a problem of another task) raises.
    """

    def __init__(self, workers: int | None = None, limits: SandboxLimits | None = None):
        self.workers = workers
        self.limits = limits or SandboxLimits(wall_time=5.0, cpu_time=5.0, per_test_time=1.0)
        self._pool: SandboxPool | None = None

    @property
    def pool(self) -> SandboxPool:
        if self._pool is None:
            self._pool = SandboxPool(self.workers)
        return self._pool

    def _check_problem(self, problem: Problem) -> None:
        """Raise for a problem this task cannot score (a misuse, not a bad completion)."""

    def _job(self, problem: Problem, completion: str) -> SandboxJob | Reward:
        raise NotImplementedError

    def _reward(self, problem: Problem, completion: str, verdict: Verdict) -> Reward:
        raise NotImplementedError

    def _safe_job(self, problem: Problem, completion: str) -> SandboxJob | Reward:
        self._check_problem(problem)
        if not isinstance(completion, str):
            raise bad_param("completions", "strings", type(completion).__name__, owner=f"{type(self).__name__}.score",
                            type_error=True)
        if len(completion) > MAX_COMPLETION_CHARS:
            return zero_reward("too_long", f"{len(completion)} characters; at most {MAX_COMPLETION_CHARS} are read")
        try:
            return self._job(problem, completion)
        except Exception as exc:  # noqa: BLE001 - a reward function never raises into the trainer
            return zero_reward("host_error", f"{type(exc).__name__}: {exc}")

    def _safe_reward(self, problem: Problem, completion: str, verdict: Verdict) -> Reward:
        try:
            return self._reward(problem, completion, verdict)
        except Exception as exc:  # noqa: BLE001 - a reward function never raises into the trainer
            return zero_reward("host_error", f"{type(exc).__name__}: {exc}")

    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Reward]:
        if len(problems) != len(completions):
            raise bad_param("completions", f"one per problem ({len(problems)})", len(completions),
                            owner=f"{type(self).__name__}.score")
        jobs = [self._safe_job(p, c) for p, c in zip(problems, completions)]
        todo = [j for j in jobs if isinstance(j, SandboxJob)]
        verdicts = iter(self.pool.map(todo)) if todo else iter(())
        out = []
        for p, c, j in zip(problems, completions, jobs):
            out.append(j if isinstance(j, Reward) else self._safe_reward(p, c, next(verdicts)))
        return out


def verdict_info(v: Verdict) -> dict[str, Any]:
    # results_forgeable: True where the tests share the candidate's interpreter (command mode, in-process harness)
    return {"exit_reason": v.exit_reason, "passed": len(v.passed), "tests": v.n_tests,
            "wall_time": round(v.wall_time, 4),
            "results_forgeable": bool(v.integrity.get("results_forgeable_by_candidate", True))}


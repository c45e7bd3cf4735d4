"""Shared pieces of the sandboxed code tasks: fenced-code extraction and a task that owns a sandbox pool."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any

from lumos.core.errors import bad_param
from lumos.rl.tasks.base import Problem, Reward, Task
from lumos.sandbox import SandboxJob, SandboxLimits, SandboxPool, Verdict

__all__ = ["extract_code_block", "SandboxTask", "verdict_info"]

_FENCE = re.compile(r"```([A-Za-z0-9_+-]*)[ \t]*\n(.*?)\n?```", re.S)


def extract_code_block(text: str, languages: tuple[str, ...] = ("python", "py", "")) -> tuple[str | None, bool]:
    """The first fenced block in one of ``languages`` → ``(code, well_formed)``.

    ``well_formed`` is True when the block is closed and, for Python, parses. An unclosed fence or no
    fence at all gives ``(None, False)``.
    """
    for m in _FENCE.finditer(text):
        lang = m.group(1).lower()
        if lang in languages:
            code = m.group(2)
            if lang in ("python", "py", ""):
                try:
                    ast.parse(code)
                except (SyntaxError, ValueError):
                    return code, False
            return code, True
    return None, False


class SandboxTask(Task):
    """Owns a lazily started pool; subclasses build one job (or an early reward) per completion."""

    def __init__(self, workers: int | None = None, limits: SandboxLimits | None = None):
        self.workers = workers
        self.limits = limits or SandboxLimits(wall_time=5.0, cpu_time=5.0, per_test_time=1.0)
        self._pool: SandboxPool | None = None

    @property
    def pool(self) -> SandboxPool:
        if self._pool is None:
            self._pool = SandboxPool(self.workers)
        return self._pool

    def _job(self, problem: Problem, completion: str) -> SandboxJob | Reward:
        raise NotImplementedError

    def _reward(self, problem: Problem, completion: str, verdict: Verdict) -> Reward:
        raise NotImplementedError

    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Reward]:
        if len(problems) != len(completions):
            raise bad_param("completions", f"one per problem ({len(problems)})", len(completions),
                            owner=f"{type(self).__name__}.score")
        jobs = [self._job(p, c) for p, c in zip(problems, completions)]
        todo = [j for j in jobs if isinstance(j, SandboxJob)]
        verdicts = iter(self.pool.map(todo)) if todo else iter(())
        out = []
        for p, c, j in zip(problems, completions, jobs):
            out.append(j if isinstance(j, Reward) else self._reward(p, c, next(verdicts)))
        return out



def verdict_info(v: Verdict) -> dict[str, Any]:
    # results_forgeable: True where the tests share the candidate's interpreter (command mode, in-process harness)
    return {"exit_reason": v.exit_reason, "passed": len(v.passed), "tests": v.n_tests,
            "wall_time": round(v.wall_time, 4),
            "results_forgeable": bool(v.integrity.get("results_forgeable_by_candidate", True))}


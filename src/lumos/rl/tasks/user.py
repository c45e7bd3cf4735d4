"""User tasks: a Python verifier callable, or a JSONL file of prompts and answers.

JSONL format, one object per line::

    {"prompt": "2+2=", "answer": "4"}
    {"prompt": "Capital of France?", "answer": "Paris", "demonstration": "Paris"}

``answer`` may be a string or a number; the default verifier compares the stripped completion with the
answer exactly (``match="exact"``) or numerically (``match="number"``, the last number in the completion).
``demonstration`` (optional) enables SFT warm start; without it the answer itself is the demonstration.

From Python::

    task = CallableTask([Problem("2+2=", 4)], verifier=lambda problem, text: text.strip() == "4")

``resolve_task(spec)`` turns a CLI ``--task`` value into a task: a registered name, a ``*.jsonl`` path, or
``module:factory`` (an importable callable returning a :class:`Task`).
"""

from __future__ import annotations

import importlib
import json
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lumos.core.errors import LumosError, bad_param
from lumos.rl.tasks.base import Problem, Reward, Task, call_with_kwargs, get_task, register_task

__all__ = ["CallableTask", "JsonlTask", "resolve_task", "load_problems_jsonl"]

Verifier = Callable[[Problem, str], "bool | float | int | Reward"]
_NUM = re.compile(r"-?\d+(?:\.\d+)?")


def _to_reward(value: Any, verifier_name: str) -> Reward:
    if isinstance(value, Reward):
        return value
    if isinstance(value, bool):
        return Reward(total=float(value), correct=value, format=0.0)
    if isinstance(value, (int, float)) and value == value:
        return Reward(total=float(value), correct=float(value) >= 1.0, format=0.0)
    raise LumosError(
        f"The verifier {verifier_name} must return a bool, a finite number or a Reward; got "
        f"{type(value).__name__} {value!r:.60}. Fix the verifier's return value."
    )


class CallableTask(Task):
    """A task from fixed problems (or a generator) and a verifier ``fn(problem, completion) -> bool|float|Reward``.

    Args:
        problems: a sequence of :class:`Problem` (or dicts with ``prompt``/``answer``), sampled with a seeded
            shuffle that cycles through all of them, or a callable ``(n, seed) -> list[Problem]``.
        verifier: called once per completion; exceptions are re-raised as one clear error naming it.
        demonstration: optional ``fn(problem) -> str`` for SFT warm start (default: ``meta["demonstration"]``,
            else ``str(answer)``).
    """

    def __init__(self, problems: Sequence[Problem | dict] | Callable[[int, int], list[Problem]], verifier: Verifier,
                 demonstration: Callable[[Problem], str] | None = None, name: str = "callable") -> None:
        if not callable(verifier):
            raise bad_param("verifier", "a callable fn(problem, completion)", verifier, owner="CallableTask")
        self.name = name
        self._verifier = verifier
        self._demo = demonstration
        if callable(problems):
            self._gen: Callable[[int, int], list[Problem]] | None = problems
            self._problems: list[Problem] = []
        else:
            self._gen = None
            self._problems = [_as_problem(p, i) for i, p in enumerate(problems)]
            if not self._problems:
                raise bad_param("problems", "a non-empty sequence", "an empty one", owner="CallableTask")

    def generate(self, n: int, seed: int) -> list[Problem]:
        if self._gen is not None:
            out = list(self._gen(n, seed))
            if len(out) != n or not all(isinstance(p, Problem) for p in out):
                raise LumosError(f"The problem generator of task {self.name!r} must return {n} Problem objects; "
                                 f"got {len(out)} items.")
            return out
        rng = random.Random(f"{self.name}:{seed}")
        out: list[Problem] = []
        while len(out) < n:
            order = list(range(len(self._problems)))
            rng.shuffle(order)
            out.extend(self._problems[i] for i in order[: n - len(out)])
        return out

    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Reward]:
        if len(problems) != len(completions):
            raise bad_param("completions", f"one completion per problem ({len(problems)})", len(completions),
                            owner=f"{self.name}.score")
        vname = getattr(self._verifier, "__qualname__", repr(self._verifier))
        out = []
        for p, c in zip(problems, completions):
            try:
                value = self._verifier(p, c)
            except Exception as exc:  # noqa: BLE001 - user code: report it in the one message shape
                raise LumosError(f"The verifier {vname} of task {self.name!r} raised {type(exc).__name__}: {exc} "
                                 f"(prompt {p.prompt!r:.60}). Fix the verifier.") from exc
            out.append(_to_reward(value, vname))
        return out

    def demonstration(self, problem: Problem) -> str:
        if self._demo is not None:
            return self._demo(problem)
        if "demonstration" in problem.meta:
            return str(problem.meta["demonstration"])
        if problem.answer is None:
            raise NotImplementedError(f"task {self.name!r} has no demonstrations (no answers)")
        return str(problem.answer)


def _as_problem(p: Problem | dict, index: int) -> Problem:
    if isinstance(p, Problem):
        return p
    if isinstance(p, dict) and isinstance(p.get("prompt"), str):
        meta = {k: v for k, v in p.items() if k not in ("prompt", "answer")}
        return Problem(prompt=p["prompt"], answer=p.get("answer"), meta=meta)
    raise bad_param(f"problems[{index}]", "a Problem or a dict with a string 'prompt'", p, owner="CallableTask")


def load_problems_jsonl(path: str | Path) -> list[Problem]:
    """Read prompts/answers from JSONL, with an error naming the file and line for each kind of problem."""
    p = Path(path)
    if not p.is_file():
        raise LumosError(f"Task file not found: {p}. Pass a JSONL file with one {{\"prompt\", \"answer\"}} object per line.")
    problems: list[Problem] = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LumosError(f"{p}:{i}: not valid JSON ({exc.msg}). Each line must be one JSON object.") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str) or not obj["prompt"]:
            raise LumosError(f"{p}:{i}: expected an object with a non-empty string 'prompt'; got {line.strip()[:80]!r}.")
        if "answer" not in obj:
            raise LumosError(f"{p}:{i}: missing 'answer'. Add the reference answer the verifier compares against.")
        problems.append(_as_problem(obj, i))
    if not problems:
        raise LumosError(f"{p} contains no problems. Add lines like {{\"prompt\": \"2+2=\", \"answer\": \"4\"}}.")
    return problems


@register_task("jsonl")
class JsonlTask(CallableTask):
    """Prompts and answers from a JSONL file (``--task path.jsonl`` or ``--task jsonl --task-arg path=...``)."""

    def __init__(self, path: str | Path, match: str = "exact") -> None:
        if match not in ("exact", "number"):
            raise bad_param("match", "'exact' or 'number'", match, owner="JsonlTask")
        self.match = match
        super().__init__(load_problems_jsonl(path), verifier=self._check, name=f"jsonl:{Path(path).name}")

    def _check(self, problem: Problem, text: str) -> Reward:
        text = text.strip()
        if self.match == "exact":
            ok = text == str(problem.answer).strip()
            return Reward(total=float(ok), correct=ok, format=float(bool(text)))
        nums = _NUM.findall(text)
        try:
            ok = bool(nums) and float(nums[-1]) == float(problem.answer)
        except (TypeError, ValueError):
            raise LumosError(f"Task {self.name!r}: answer {problem.answer!r} is not a number but match='number'. "
                             "Use match='exact'.") from None
        return Reward(total=float(ok), correct=ok, format=float(bool(nums)))


def resolve_task(spec: str, **kwargs: Any) -> Task:
    """A task from a CLI spec: a registered name, a ``.jsonl`` path, or ``module:factory``."""
    if spec.endswith(".jsonl"):
        import functools

        return call_with_kwargs(functools.partial(JsonlTask, spec), kwargs, f"task file {spec!r}")
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as exc:
            raise LumosError(f"Cannot load task factory {spec!r} ({exc}). Use 'package.module:function'.") from None
        task = call_with_kwargs(factory, kwargs, f"task factory {spec!r}")
        if not isinstance(task, Task):
            raise LumosError(f"Task factory {spec!r} returned {type(task).__name__}, not a lumos Task.")
        return task
    return get_task(spec, **kwargs)

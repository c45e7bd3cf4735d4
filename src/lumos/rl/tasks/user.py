"""User tasks: a Python verifier callable, or a data file of prompts (and answers).

JSONL format, one object per line (JSON, CSV, Parquet and saved ``datasets`` directories work alike, see
:mod:`lumos.rl.data`)::

    {"prompt": "2+2=", "answer": "4"}
    {"prompt": [{"role": "user", "content": "Capital of France?"}], "answer": "Paris", "demonstration": "Paris"}

``answer`` may be a string or a number; the default verifier compares the stripped completion with the
answer exactly (``match="exact"``) or numerically (``match="number"``, the last number in the completion).
With reward functions (``--reward PATH.py:FUNC``) every column is theirs (:mod:`lumos.rl.rewards`).
``demonstration`` (optional) enables SFT warm start; without it the answer itself is the demonstration.

From Python::

    task = CallableTask([Problem("2+2=", 4)], verifier=lambda problem, text: text.strip() == "4",
                        eval_problems=[Problem("3+3=", 6)])

``resolve_task(spec)`` turns a CLI ``--task`` value into a task: a registered name, a data file (or saved
dataset directory), or ``module:factory`` / ``path/file.py:factory`` (a callable returning a :class:`Task`,
imported without ``PYTHONPATH``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lumos.core.errors import LumosError, bad_param
from lumos.rl.data import DATA_SUFFIXES, read_rows
from lumos.rl.tasks.base import Problem, Reward, Task, call_with_kwargs, get_task, register_task
from lumos.rl.tasks.dataset import DatasetTask, cycle_problems

__all__ = ["CallableTask", "JsonlTask", "DatasetTask", "resolve_task", "load_problems_jsonl", "data_task"]

Verifier = Callable[[Problem, str], "bool | float | int | Reward"]


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
        eval_problems: held-out problems for evaluation. A fixed problem list without them cannot be
            evaluated (:meth:`held_out` raises rather than evaluate on training prompts); a generator is asked
            for fresh problems with the evaluation seed.
    """

    def __init__(self, problems: Sequence[Problem | dict] | Callable[[int, int], list[Problem]], verifier: Verifier,
                 demonstration: Callable[[Problem], str] | None = None, name: str = "callable",
                 eval_problems: Sequence[Problem | dict] | None = None) -> None:
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
        self._eval = None if eval_problems is None else [_as_problem(p, i) for i, p in enumerate(eval_problems)]

    def generate(self, n: int, seed: int) -> list[Problem]:
        if self._gen is not None:
            out = list(self._gen(n, seed))
            if len(out) != n or not all(isinstance(p, Problem) for p in out):
                raise LumosError(f"The problem generator of task {self.name!r} must return {n} Problem objects; "
                                 f"got {len(out)} items.")
            return out
        return cycle_problems(self._problems, n, seed, self.name)

    def held_out(self, n: int, seed: int) -> list[Problem]:
        """``eval_problems`` (the first ``n``), or fresh problems from the generator; never training problems."""
        if self._eval is not None:
            return list(self._eval[:n])
        if self._gen is not None:
            return self.generate(n, seed)
        raise LumosError(f"Task {self.name!r} has a fixed list of problems and no held-out ones, and evaluating on "
                         "training prompts would overstate accuracy. Pass eval_problems=[...] to CallableTask, or "
                         "evaluate never (RLConfig(eval_every=0)).")

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
    if isinstance(p, dict) and isinstance(p.get("prompt"), (str, list)):
        meta = {k: v for k, v in p.items() if k not in ("prompt", "answer")}
        return Problem(prompt=p["prompt"], answer=p.get("answer"), meta=meta)
    raise bad_param(f"problems[{index}]", "a Problem or a dict with a string 'prompt'", p, owner="CallableTask")


def load_problems_jsonl(path: str | Path) -> list[Problem]:
    """Prompts/answers of a JSONL file (checked as :func:`lumos.rl.data.read_rows` does), as problems."""
    return JsonlTask(path).train_problems


def data_task(path: str | Path, *, prompt_column: str = "prompt", rewards: Any = None, match: str = "exact",
              eval_data: str | Path | None = None, eval_fraction: float = 0.0, split_seed: int = 0) -> DatasetTask:
    """A :class:`DatasetTask` from a data file or saved dataset directory (``eval_data``: held-out rows)."""
    rows, eval_rows = _read_split(path, eval_data, prompt_column)
    return DatasetTask(rows, prompt_column=prompt_column, rewards=rewards, match=match, eval_rows=eval_rows,
                       eval_fraction=eval_fraction, split_seed=split_seed, name=f"data:{Path(path).name}")


def _read_split(path: str | Path, eval_data: str | Path | None,
                prompt_column: str = "prompt") -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The rows of ``path`` and, when given, the held-out rows of ``eval_data`` (which then replace any
    ``eval_fraction``: :class:`DatasetTask` holds out a fraction only without ``eval_rows``)."""
    rows = read_rows(path, prompt_column)
    return rows, (read_rows(eval_data, prompt_column) if eval_data is not None else None)


@register_task("jsonl")
class JsonlTask(DatasetTask):
    """Prompts and answers from a JSONL file (``--task path.jsonl`` or ``--task jsonl --task-arg path=...``)."""

    def __init__(self, path: str | Path, match: str = "exact", eval_data: str | Path | None = None,
                 eval_fraction: float = 0.0) -> None:
        rows, eval_rows = _read_split(path, eval_data)
        super().__init__(rows, match=match, eval_rows=eval_rows, eval_fraction=eval_fraction,
                         name=f"jsonl:{Path(path).name}")


def is_data_spec(spec: str) -> bool:
    """Whether a ``--task`` value names a data file (by suffix) or a saved dataset directory."""
    return spec.lower().endswith(DATA_SUFFIXES) or Path(spec).is_dir()


def resolve_task(spec: str, **kwargs: Any) -> Task:
    """A task from a CLI spec: a registered name, a data file (``.jsonl``, ``.json``, ``.csv``, ``.parquet``) or saved
    dataset directory (:func:`data_task`, ``kwargs`` its options), or ``module:factory`` / ``file.py:factory``."""
    from lumos.rl.plugins import load_object

    if not isinstance(spec, str) or not spec.strip():
        raise LumosError("--task must name a task, a data file or module:factory; got an empty value.")
    if is_data_spec(spec):
        return call_with_kwargs(functools.partial(data_task, spec), kwargs, f"task file {spec!r}")
    if ":" in spec:
        factory = load_object(spec, "--task")
        task = call_with_kwargs(factory, kwargs, f"task factory {spec!r}")
        if not isinstance(task, Task):
            raise LumosError(f"Task factory {spec!r} returned {type(task).__name__}, not a lumos Task.")
        return task
    return get_task(spec, **kwargs)

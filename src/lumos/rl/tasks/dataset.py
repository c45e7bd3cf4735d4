"""A task from rows of prompt data, scored by TRL-style reward functions or by comparing with an ``answer``.

``DatasetTask`` is what ``lumos rl train --task FILE`` builds (``.jsonl``, ``.json``, ``.csv``, ``.parquet`` or a
saved ``datasets`` directory; :mod:`lumos.rl.data` reads and checks the rows). Each row becomes a
:class:`~lumos.rl.tasks.base.Problem`: ``prompt`` from the prompt column (text or chat messages), ``answer``
from an ``answer`` column if there is one, ``meta`` every column but the prompt.

Scoring:

- with ``rewards`` (:class:`~lumos.rl.rewards.RewardFunctions`), the functions are called once per batch TRL's
  way, every non-prompt column passed as a keyword list; ``correct`` (the accuracy metrics) means a positive
  total reward;
- without, the stripped completion is compared with the ``answer`` exactly (``match="exact"``) or as the last
  number in it (``match="number"``); every row then needs a string or number ``answer`` (with ``"number"``, one
  that reads as a finite number: a row that does not is refused when the task is built, not when it is scored).

Evaluation uses held-out rows only (:meth:`held_out`): ``eval_rows`` (``--eval-data FILE``) or a seeded
``eval_fraction`` of the rows, removed from training. With neither, evaluating is an error: a task never
evaluates on its training prompts.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from typing import Any

from lumos.core.errors import LumosError, bad_param, one_line
from lumos.core.validation import check_choice, check_float
from lumos.rl.data import check_prompt, split_rows
from lumos.rl.rewards import REWARD_ARGS
from lumos.rl.tasks.base import Problem, Reward, Task

__all__ = ["DatasetTask", "cycle_problems"]

_NUM = re.compile(r"-?\d+(?:\.\d+)?")


def _as_number(answer: Any) -> float | None:
    """``answer`` as a finite float (a number, or a string holding one), else None."""
    if isinstance(answer, bool):
        return None
    try:
        value = float(answer.strip() if isinstance(answer, str) else answer)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def cycle_problems(problems: Sequence[Problem], n: int, seed: int, name: str) -> list[Problem]:
    """``n`` problems: seeded shuffles of ``problems``, one after another (every problem once per pass)."""
    rng = random.Random(f"{name}:{seed}")
    out: list[Problem] = []
    while len(out) < n:
        order = list(range(len(problems)))
        rng.shuffle(order)
        out.extend(problems[i] for i in order[: n - len(out)])
    return out


class DatasetTask(Task):
    """Prompts and columns from ``rows``; see the module docstring.

    Args:
        rows: dicts, each with ``prompt_column``.
        prompt_column: the column holding the prompt (text or chat messages).
        rewards: TRL-style reward functions; None = compare with the ``answer`` column.
        match: ``"exact"`` or ``"number"`` (only without ``rewards``).
        eval_rows: held-out rows for evaluation (same columns).
        eval_fraction: without ``eval_rows``, hold out this seeded fraction of ``rows`` (0 = none).
        split_seed: seed of that split.
        name: task name (metrics, reports).
    """

    takes_completion_ids = True

    def __init__(self, rows: Sequence[dict[str, Any]], *, prompt_column: str = "prompt", rewards: Any = None,
                 match: str = "exact", eval_rows: Sequence[dict[str, Any]] | None = None, eval_fraction: float = 0.0,
                 split_seed: int = 0, name: str = "dataset") -> None:
        check_choice(match, "match", ("exact", "number"), owner="DatasetTask")
        check_float(eval_fraction, "eval_fraction", 0.0, 1.0, owner="DatasetTask", high_inclusive=False)
        if not isinstance(prompt_column, str) or not prompt_column:
            raise bad_param("prompt_column", "a column name", prompt_column, owner="DatasetTask")
        if not rows:
            raise bad_param("rows", "a non-empty sequence of dicts", "an empty one", owner="DatasetTask")
        self.name, self.prompt_column, self.rewards, self.match = name, prompt_column, rewards, match
        train = [self._problem(r, i, "rows") for i, r in enumerate(rows)]
        held: list[Problem] = []
        if eval_rows is not None:
            held = [self._problem(r, i, "eval_rows") for i, r in enumerate(eval_rows)]
            if not held:
                raise bad_param("eval_rows", "a non-empty sequence of dicts", "an empty one", owner="DatasetTask")
        elif eval_fraction > 0:
            train, held = split_rows(train, eval_fraction, split_seed)
        self.train_problems, self.eval_problems = train, held
        self.columns = sorted({k for p in train + held for k in p.meta})
        clash = sorted(set(self.columns) & set(REWARD_ARGS)) if rewards is not None else []
        if clash:
            raise LumosError(f"{name}: the data column {clash[0]!r} has the name of an argument the trainer passes to "
                             f"reward functions ({', '.join(REWARD_ARGS)}), so they could not see both. Rename the "
                             "column.")

    def _problem(self, row: Any, i: int, what: str) -> Problem:
        where = f"{self.name} {what}[{i}]"
        if not isinstance(row, dict) or self.prompt_column not in row:
            raise LumosError(f"{where}: expected a dict with a {self.prompt_column!r} column; got "
                             f"{one_line(repr(row), 80)}.")
        prompt = check_prompt(row[self.prompt_column], where)
        meta = {k: v for k, v in row.items() if k != self.prompt_column}
        answer = row.get("answer")
        if self.rewards is None:
            if "answer" not in row:
                raise LumosError(f"{where}: no 'answer' column. Add the reference answer, or score completions "
                                 "with reward functions (--reward PATH.py:FUNC).")
            if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
                raise LumosError(f"{where}: the answer must be a string or a number to compare completions with; "
                                 f"got {type(answer).__name__} {one_line(repr(answer), 60)}. Use a reward function "
                                 "(--reward) for structured answers.")
            if self.match == "number" and _as_number(answer) is None:
                raise LumosError(f"{where}: match='number' compares numbers, but the answer "
                                 f"{one_line(repr(answer), 60)} is not one. Fix the answer, or use match='exact'.")
        return Problem(prompt=prompt, answer=answer, meta=meta)

    # ------------------------------------------------------------------------------------------ problems
    def generate(self, n: int, seed: int) -> list[Problem]:
        return cycle_problems(self.train_problems, n, seed, self.name)

    def held_out(self, n: int, seed: int) -> list[Problem]:
        """The first ``n`` held-out problems (all of them when there are fewer); never training rows."""
        if not self.eval_problems:
            raise LumosError(f"Task {self.name!r} has no held-out rows, and evaluating on training prompts would "
                             "overstate accuracy. Pass --eval-data FILE or --eval-fraction F (API: eval_rows= or "
                             "eval_fraction=), or evaluate never (--eval-every 0).")
        return list(self.eval_problems[:n])

    # ------------------------------------------------------------------------------------------ scoring
    def score(self, problems: Sequence[Problem], completions: Sequence[str],
              completion_ids: Sequence[Sequence[int]] | None = None) -> list[Reward]:
        if len(problems) != len(completions):
            raise bad_param("completions", f"one completion per problem ({len(problems)})", len(completions),
                            owner=f"{self.name}.score")
        if self.rewards is None:
            return [self._check(p, c) for p, c in zip(problems, completions)]
        prompts = [p.prompt for p in problems]
        shaped = [[{"role": "assistant", "content": c}] if isinstance(p.prompt, list) else c
                  for p, c in zip(problems, completions)]
        columns = {k: [p.meta.get(k) for p in problems] for k in self.columns}
        ids = [list(x) for x in completion_ids] if completion_ids is not None else [[] for _ in problems]
        per = self.rewards.per_function(prompts, shaped, ids, columns)
        totals = self.rewards.combine(per)
        out = []
        for i, total in enumerate(totals):
            parts = {name: col[i] for name, col in zip(self.rewards.names, per)}
            scorable = not math.isnan(total)
            out.append(Reward(total=total, correct=scorable and total > 0, format=0.0,
                              info={"rewards": parts, **({} if scorable else {"unscorable": True})}))
        return out

    def _check(self, problem: Problem, text: str) -> Reward:
        text = text.strip()
        if self.match == "exact":
            ok = text == str(problem.answer).strip()
            return Reward(total=float(ok), correct=ok, format=float(bool(text)))
        nums = _NUM.findall(text)
        ok = bool(nums) and float(nums[-1]) == _as_number(problem.answer)
        return Reward(total=float(ok), correct=ok, format=float(bool(nums)))

    def demonstration(self, problem: Problem) -> str:
        if "demonstration" in problem.meta:
            return str(problem.meta["demonstration"])
        if problem.answer is None:
            raise NotImplementedError(f"task {self.name!r} has no demonstrations (no 'demonstration' or 'answer' "
                                      "column)")
        return str(problem.answer)

"""Sort a list of integers: prompt ``"sort 31,4,17:"``, completion ``"4,17,31"``."""

from __future__ import annotations

import random
import re

from lumos.core.validation import check_int
from lumos.rl.tasks._common import VerifiedTask
from lumos.rl.tasks.base import Problem, register_task

__all__ = ["SortingTask"]

_LIST = re.compile(r"\d+(,\d+)*")


@register_task("sorting")
class SortingTask(VerifiedTask):
    """Sort ``min_length..length`` integers in ``[0, max_value]`` ascending; reward 1 for the exact list."""

    name = "sorting"

    def __init__(self, length: int = 4, min_length: int = 2, max_value: int = 99, format_weight: float = 0.1) -> None:
        super().__init__(format_weight)
        self.length = check_int(length, "length", 1, 64, owner="SortingTask")
        self.min_length = check_int(min_length, "min_length", 1, length, owner="SortingTask")
        self.max_value = check_int(max_value, "max_value", 1, 10**9, owner="SortingTask")

    def _make(self, rng: random.Random) -> Problem:
        xs = [rng.randint(0, self.max_value) for _ in range(rng.randint(self.min_length, self.length))]
        return Problem(prompt="sort " + ",".join(map(str, xs)) + ":", answer=sorted(xs), meta={"numbers": xs})

    def demonstration(self, problem: Problem) -> str:
        return ",".join(map(str, problem.answer))

    def _verify(self, problem: Problem, text: str) -> tuple[bool, bool, dict]:
        if not _LIST.fullmatch(text):
            return False, False, {}
        got = [int(x) for x in text.split(",")]
        return got == problem.answer, True, {"is_permutation": sorted(got) == problem.answer}

"""Multi-digit addition and multiplication with worked steps (exact verifiers).

Addition: prompt ``"47+385="``, completion ``"432"``.
Multiplication: prompt ``"47*36="``; the demonstration writes one partial product per non-zero digit of the
second factor, then their sum: ``"47*6=282;47*30=1410;282+1410=1692"``. The answer is the number after the
last ``=``; the completion is well formed when it follows that grammar, and ``info["steps_ok"]`` says whether
every written step is arithmetically true.
"""

from __future__ import annotations

import random
import re

from lumos.core.validation import check_int
from lumos.rl.tasks._common import VerifiedTask
from lumos.rl.tasks.base import Problem, register_task

__all__ = ["AdditionTask", "MultiplicationTask"]

_INT = re.compile(r"-?\d+")
_STEP = re.compile(r"(\d+)\*(\d+)=(\d+)")
_SUM = re.compile(r"(\d+(?:\+\d+)+)=(\d+)")


def _rand_int(rng: random.Random, min_digits: int, max_digits: int) -> int:
    d = rng.randint(min_digits, max_digits)
    return rng.randint(10 ** (d - 1) if d > 1 else 0, 10**d - 1)


@register_task("addition")
class AdditionTask(VerifiedTask):
    """``a+b=`` with operands of ``min_digits..digits`` digits; reward 1 for the exact sum."""

    name = "addition"

    def __init__(self, digits: int = 2, min_digits: int = 1, format_weight: float = 0.1) -> None:
        super().__init__(format_weight)
        self.digits = check_int(digits, "digits", 1, 18, owner="AdditionTask")
        self.min_digits = check_int(min_digits, "min_digits", 1, digits, owner="AdditionTask")

    def _make(self, rng: random.Random) -> Problem:
        a, b = _rand_int(rng, self.min_digits, self.digits), _rand_int(rng, self.min_digits, self.digits)
        return Problem(prompt=f"{a}+{b}=", answer=a + b, meta={"a": a, "b": b})

    def _verify(self, problem: Problem, text: str) -> tuple[bool, bool, dict]:
        ok = bool(_INT.fullmatch(text))
        return ok and int(text) == problem.answer, ok, {}

    def demonstration(self, problem: Problem) -> str:
        return str(problem.answer)


@register_task("multiplication")
class MultiplicationTask(VerifiedTask):
    """``a*b=`` answered with worked steps (partial products, then their sum)."""

    name = "multiplication"

    def __init__(self, digits: int = 2, multiplier_digits: int = 1, format_weight: float = 0.1) -> None:
        super().__init__(format_weight)
        self.digits = check_int(digits, "digits", 1, 12, owner="MultiplicationTask")
        self.multiplier_digits = check_int(multiplier_digits, "multiplier_digits", 1, 12, owner="MultiplicationTask")

    def _make(self, rng: random.Random) -> Problem:
        a = _rand_int(rng, 1, self.digits)
        b = _rand_int(rng, 1, self.multiplier_digits)
        return Problem(prompt=f"{a}*{b}=", answer=a * b, meta={"a": a, "b": b})

    def demonstration(self, problem: Problem) -> str:
        a, b = problem.meta["a"], problem.meta["b"]
        parts = [int(d) * 10**i for i, d in enumerate(reversed(str(b))) if d != "0"] or [0]
        steps = [f"{a}*{p}={a * p}" for p in parts]
        if len(parts) > 1:
            steps.append("+".join(str(a * p) for p in parts) + f"={a * b}")
        return ";".join(steps)

    def _verify(self, problem: Problem, text: str) -> tuple[bool, bool, dict]:
        items = text.split(";")
        steps_ok = True
        for item in items[:-1]:
            m = _STEP.fullmatch(item)
            if not m:
                return False, False, {"steps_ok": False}
            steps_ok &= int(m[1]) * int(m[2]) == int(m[3])
        last = items[-1]
        m_step, m_sum = _STEP.fullmatch(last), _SUM.fullmatch(last)
        if m_step:
            steps_ok &= int(m_step[1]) * int(m_step[2]) == int(m_step[3])
            answer = int(m_step[3])
        elif m_sum and len(items) > 1:
            steps_ok &= sum(int(x) for x in m_sum[1].split("+")) == int(m_sum[2])
            answer = int(m_sum[2])
        else:
            return False, False, {"steps_ok": False}
        return answer == problem.answer, True, {"steps_ok": bool(steps_ok)}

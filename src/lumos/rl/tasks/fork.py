"""Guess-then-check addition: a task whose success hinges on one rare *fork token*.

Prompt ``"3+4="``. A completion first commits to a guess; it may then emit the fork token ``?`` ("wait,
let me check"), restate the problem and compute it::

    "5"            direct answer: a bare guess
    "5?3+4=7"      guess, fork, verification; the answer is the number after the last '='

The answer is the last number; by default (``require_check=True``) it counts only after a verification,
so success depends on the fork token. A completion is well formed when it matches ``G`` or ``G?a+b=S`` (integers);
a verification must restate the prompt's own operands, otherwise it is well formed but wrong.
``info["fork"]`` says whether the fork token was used.

The warm-start demonstrations are designed so that the fork is *rare but valuable* (the situation CISPO's
paper describes for reflective tokens such as "Wait"): a demonstration's guess is a uniformly random
number in ``[0, 2·max_operand]`` (right by chance 1/9 for the default ``max_operand=4``), and only a share
``demo_fork_rate`` of demonstrations continue with ``?`` and the worked sum. After supervised warm start
the policy therefore guesses, emits ``?`` with probability ≈ ``demo_fork_rate``, and is right almost only
when it does. :func:`lumos.studies.rl_study.fork_warm_start` first teaches the verification on a high fork rate,
then lowers the rate, so the skill is learned but the fork stays rare.
"""

from __future__ import annotations

import random
import re

from lumos.core.errors import bad_param
from lumos.core.validation import check_int
from lumos.rl.tasks._common import VerifiedTask
from lumos.rl.tasks.base import Problem, register_task

__all__ = ["GuessCheckTask", "FORK_TOKEN"]

#: the fork token (one byte, hence one token of the byte tokenizer)
FORK_TOKEN = "?"
_DIRECT = re.compile(r"(\d+)")
_CHECKED = re.compile(r"(\d+)\?(\d+)\+(\d+)=(\d+)")


@register_task("guess-check")
class GuessCheckTask(VerifiedTask):
    """``a+b=`` with operands in ``[0, max_operand]``, answered by a guess and an optional ``?`` verification.

    Args:
        max_operand: largest operand (default 4: 25 problems, a sum table a tiny model learns quickly).
        demo_fork_rate: share of warm-start demonstrations that use the fork token (in [0, 1]).
        require_check: an answer counts (reward 1) only after the verification; a right bare guess then earns
            the format reward only (``info["guess_right"]`` still records it). With ``False`` a right guess
            counts too — on 25 problems RL then memorises the direct answers instead of learning the fork.
        format_weight: reward of a well-formed wrong completion.
    """

    name = "guess-check"
    fork_token = FORK_TOKEN

    def __init__(self, max_operand: int = 4, demo_fork_rate: float = 0.03, require_check: bool = True,
                 format_weight: float = 0.1) -> None:
        super().__init__(format_weight)
        self.require_check = bool(require_check)
        self.max_operand = check_int(max_operand, "max_operand", 1, 99, owner="GuessCheckTask")
        if not isinstance(demo_fork_rate, (int, float)) or isinstance(demo_fork_rate, bool) \
                or not 0.0 <= demo_fork_rate <= 1.0:
            raise bad_param("demo_fork_rate", "a float in [0, 1]", demo_fork_rate, owner="GuessCheckTask",
                            fix="Pass the share of demonstrations that use the fork token, e.g. 0.03.")
        self.demo_fork_rate = float(demo_fork_rate)

    @property
    def max_answer(self) -> int:
        return 2 * self.max_operand

    def _make(self, rng: random.Random) -> Problem:
        a, b = rng.randint(0, self.max_operand), rng.randint(0, self.max_operand)
        # the demonstration's random choices are drawn with the problem, so demonstration() is deterministic
        guess = rng.randint(0, self.max_answer)
        fork = rng.random() < self.demo_fork_rate
        return Problem(prompt=f"{a}+{b}=", answer=a + b, meta={"a": a, "b": b, "guess": guess, "fork": fork})

    def demonstration(self, problem: Problem) -> str:
        m = problem.meta
        text = str(m["guess"])
        if m["fork"]:
            text += f"{FORK_TOKEN}{m['a']}+{m['b']}={problem.answer}"
        return text

    def _verify(self, problem: Problem, text: str) -> tuple[bool, bool, dict]:
        if _DIRECT.fullmatch(text):
            right = int(text) == problem.answer
            return right and not self.require_check, True, {"fork": False, "guess_right": right}
        m = _CHECKED.fullmatch(text)
        if m is None:
            return False, False, {"fork": FORK_TOKEN in text}
        same = int(m[2]) == problem.meta["a"] and int(m[3]) == problem.meta["b"]
        return same and int(m[4]) == problem.answer, True, {"fork": True, "restated": same}

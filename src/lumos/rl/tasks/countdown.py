"""Countdown: reach a target with the given numbers, each used exactly once, and + - * /.

Prompt ``"3 7 5->50:"``, completion an arithmetic expression such as ``"(3+7)*5"``. The verifier parses the
expression with :mod:`ast` (integers, the four operators and parentheses only; nothing is evaluated by
Python), checks that the numbers used are exactly the given multiset, and evaluates with exact fractions.
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from fractions import Fraction

from lumos.core.validation import check_int
from lumos.rl.tasks._common import VerifiedTask
from lumos.rl.tasks.base import Problem, register_task

__all__ = ["CountdownTask", "evaluate_expression"]

_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b}


def evaluate_expression(text: str) -> tuple[Fraction, list[int]] | None:
    """Exact value and the integer literals of ``text``, or None if it is not a valid +-*/ expression."""
    if len(text) > 200:
        return None
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        return None
    nums: list[int] = []

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            nums.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError("unsupported")

    try:
        return ev(tree.body), nums
    except (ValueError, ZeroDivisionError):
        return None


@register_task("countdown")
class CountdownTask(VerifiedTask):
    """``count`` numbers in ``[1, max_value]``; the target is the value of a random expression over all of them."""

    name = "countdown"

    def __init__(self, count: int = 3, max_value: int = 9, format_weight: float = 0.1) -> None:
        super().__init__(format_weight)
        self.count = check_int(count, "count", 2, 6, owner="CountdownTask")
        self.max_value = check_int(max_value, "max_value", 1, 1000, owner="CountdownTask")

    def _make(self, rng: random.Random) -> Problem:
        while True:
            nums = [rng.randint(1, self.max_value) for _ in range(self.count)]
            order = nums[:]
            rng.shuffle(order)
            expr = str(order[0])
            for x in order[1:]:
                op = rng.choice("+-*/")
                expr = f"({expr}){op}{x}" if op in "*/" and any(c in expr for c in "+-") else f"{expr}{op}{x}"
            res = evaluate_expression(expr)
            if res is not None and res[0].denominator == 1 and res[0] > 0:
                target = int(res[0])
                prompt = " ".join(map(str, nums)) + f"->{target}:"
                return Problem(prompt=prompt, answer=target, meta={"numbers": nums, "solution": expr})

    def demonstration(self, problem: Problem) -> str:
        return problem.meta["solution"]

    def _verify(self, problem: Problem, text: str) -> tuple[bool, bool, dict]:
        res = evaluate_expression(text)
        if res is None:
            return False, False, {}
        value, used = res
        uses_all = Counter(used) == Counter(problem.meta["numbers"])
        return uses_all and value == problem.answer, True, {"uses_all_numbers": uses_all}

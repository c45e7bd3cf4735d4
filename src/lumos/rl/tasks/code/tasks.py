"""``code-expr`` and ``code-functions``: write an expression or a function; the sandbox decides the reward."""

from __future__ import annotations

import ast
import random
from collections.abc import Sequence
from typing import Any

from lumos.core.errors import bad_param
from lumos.core.validation import check_int, check_positive_int
from lumos.rl.tasks.base import Problem, Reward, register_task
from lumos.rl.tasks.code.common import SandboxTask, extract_code_block, parses, verdict_info
from lumos.rl.tasks.code.problems import FAMILIES
from lumos.sandbox import SandboxJob, Verdict

__all__ = ["ExpressionTask", "FunctionTask", "MAX_EXPRESSION_CHARS"]

#: Longest expression ``code-expr`` accepts (characters): a longer line is not well formed.
MAX_EXPRESSION_CHARS = 1000


_EXPR_TEST = """
def test_value():
    value = solution.ANSWER
    report("value", value if isinstance(value, (int, float)) and not isinstance(value, bool) else None)
    assert type(value) is int and value == {target}
"""


@register_task("code-expr")
class ExpressionTask(SandboxTask):
    """"Write a Python expression equal to N": the smallest code environment a tiny model can learn.

    Reward: 0.1 × format (one line of at most :data:`MAX_EXPRESSION_CHARS` characters that parses as a
    Python expression and contains an operator when ``require_operator``) + 0.9 when it evaluates (in the
    sandbox) to the int N, else
    0.4 × max(0, 1 − |value − N| / max(|N|, 1)) when it evaluates to a number (shaping).
    """

    name = "code-expr"

    def __init__(self, low: int = 0, high: int = 99, require_operator: bool = True, **kw: Any):
        super().__init__(**kw)
        check_int(low, "low", owner="ExpressionTask")
        check_int(high, "high", low, owner="ExpressionTask")
        self.low, self.high, self.require_operator = low, high, require_operator

    def generate(self, n: int, seed: int) -> list[Problem]:
        rng = random.Random(seed)
        out = []
        for _ in range(n):
            target = rng.randint(self.low, self.high)
            out.append(Problem(f"Write a Python expression equal to {target}.\n", target, {"target": target}))
        return out

    def demonstration(self, problem: Problem) -> str:
        target = int(problem.answer)
        a = random.Random(target).randint(0, max(target, 0))
        return f"{a}+{target - a}" if target >= 0 else f"{a}-{a - target}"

    @staticmethod
    def expression(completion: str) -> str:
        code, _ = extract_code_block(completion)
        text = code if code is not None else completion
        return text.strip().split("\n")[0].strip() if text.strip() else ""

    def _format_ok(self, expr: str) -> bool:
        if len(expr) > MAX_EXPRESSION_CHARS or not parses(expr, "eval"):
            return False
        tree = ast.parse(expr, mode="eval")
        has_op = any(isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Call)) for node in ast.walk(tree))
        return has_op or not self.require_operator

    def _job(self, problem: Problem, completion: str) -> SandboxJob | Reward:
        expr = self.expression(completion)
        if not self._format_ok(expr):
            return Reward(0.0, False, 0.0, {"exit_reason": "format"})
        tests = _EXPR_TEST.format(target=int(problem.answer))
        return SandboxJob("tests", source=f"ANSWER = (\n{expr}\n)\n", tests=tests, limits=self.limits)

    def _reward(self, problem: Problem, completion: str, verdict: Verdict) -> Reward:
        target = int(problem.answer)
        value = verdict.reports.get("value")
        if verdict.all_passed:
            return Reward(1.0, True, 1.0, {**verdict_info(verdict), "value": value})
        shaped = 0.0
        if isinstance(value, (int, float)) and abs(value) < 1e300:
            shaped = 0.4 * max(0.0, 1.0 - abs(value - target) / max(abs(target), 1))
        return Reward(0.1 + shaped, False, 1.0, {**verdict_info(verdict), "value": value})


@register_task("code-functions")
class FunctionTask(SandboxTask):
    """Write a function from a parameterised family; hidden tests decide the reward.

    Reward: fraction of hidden tests passed + ``format_weight`` × (a well-formed ```` ```python ```` block).
    ``correct`` means every test passed. ``families`` restricts the families (default: all).
    """

    name = "code-functions"

    def __init__(self, families: Sequence[str] | None = None, n_tests: int = 8, format_weight: float = 0.1,
                 **kw: Any):
        super().__init__(**kw)
        names = list(families) if families else sorted(FAMILIES)
        unknown = [f for f in names if f not in FAMILIES]
        if unknown:
            raise bad_param("families", f"names from {', '.join(sorted(FAMILIES))}", unknown, owner="FunctionTask")
        check_positive_int(n_tests, "n_tests", owner="FunctionTask")
        self.families, self.n_tests, self.format_weight = names, n_tests, float(format_weight)

    def generate(self, n: int, seed: int) -> list[Problem]:
        rng = random.Random(seed)
        out = []
        for _ in range(n):
            fam = FAMILIES[rng.choice(self.families)]
            params = fam.params(rng)
            ref = fam.reference(**params)
            namespace: dict[str, Any] = {}
            exec(compile(ref, "<reference>", "exec"), namespace)  # noqa: S102 - our own reference code
            fn = namespace[fam.func]
            cases = [fam.inputs(rng) for _ in range(self.n_tests)]
            expected = [fn(*args) for args in cases]
            tests = "".join(f"\ndef test_{i}():\n    assert {fam.func}(*{args!r}) == {exp!r}\n"
                            for i, (args, exp) in enumerate(zip(cases, expected)))
            example = f"{fam.func}{tuple(cases[0])!r} == {expected[0]!r}".replace(",)", ")")
            prompt = (f"{fam.describe(**params)}\nExample: {example}\n"
                      f"Answer with the function `{fam.func}` in a ```python code block.\n")
            out.append(Problem(prompt, ref, {"family": fam.name, "params": params, "tests": tests}))
        return out

    def demonstration(self, problem: Problem) -> str:
        return f"```python\n{problem.answer}```\n"

    def _job(self, problem: Problem, completion: str) -> SandboxJob | Reward:
        code, ok = extract_code_block(completion)
        if code is None or not ok:
            return Reward(0.0, False, 0.0, {"exit_reason": "format"})
        return SandboxJob("tests", source=code + "\n", tests=problem.meta["tests"], limits=self.limits)

    def _reward(self, problem: Problem, completion: str, verdict: Verdict) -> Reward:
        frac = verdict.pass_fraction
        return Reward(frac + self.format_weight, verdict.all_passed, 1.0, verdict_info(verdict))

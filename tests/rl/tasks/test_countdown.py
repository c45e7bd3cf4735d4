from fractions import Fraction

from lumos.rl.tasks import get_task
from lumos.rl.tasks.base import Problem
from lumos.rl.tasks.countdown import evaluate_expression


def test_evaluate_expression_is_exact_and_safe():
    assert evaluate_expression("(3+7)*5") == (Fraction(50), [3, 7, 5])
    assert evaluate_expression("7/2") == (Fraction(7, 2), [7, 2])
    for bad in ("__import__('os')", "2**8", "1/0", "abs(-3)", "3.5+1", "x+1", ""):
        assert evaluate_expression(bad) is None


def test_countdown_verifier():
    t = get_task("countdown", count=3)
    p = Problem("3 7 5->50:", 50, {"numbers": [3, 7, 5]})
    rs = t.score([p] * 4, ["(3+7)*5", "(7+3)*5", "10*5", "(3+7)*5+0"])
    assert [r.correct for r in rs] == [True, True, False, False]   # 10*5 and +0 do not use exactly 3, 7, 5
    assert rs[2].info["uses_all_numbers"] is False and rs[2].total == 0.1
    ps = t.generate(30, seed=3)
    assert all(r.correct for r in t.score(ps, [t.demonstration(q) for q in ps]))
    assert all(q.answer > 0 and len(q.meta["numbers"]) == 3 for q in ps)

import pytest

from lumos.core.errors import LumosError
from lumos.rl.tasks import get_task
from lumos.rl.tasks.base import Problem


def test_addition_verifier_and_demonstrations():
    t = get_task("addition", digits=3)
    ps = t.generate(50, seed=1)
    assert ps == t.generate(50, seed=1) and ps != t.generate(50, seed=2)
    assert all(r.correct and r.total == 1.0 for r in t.score(ps, [t.demonstration(p) for p in ps]))
    p = Problem("12+34=", 46, {"a": 12, "b": 34})
    r = t.score([p] * 5, ["46", " 46\n", "45", "4 6", "forty-six"])
    assert [x.total for x in r] == [1.0, 1.0, 0.1, 0.0, 0.0]
    assert [x.format for x in r] == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_multiplication_worked_steps():
    t = get_task("multiplication", digits=2, multiplier_digits=2)
    p = Problem("47*36=", 47 * 36, {"a": 47, "b": 36})
    assert t.demonstration(p) == "47*6=282;47*30=1410;282+1410=1692"
    good, wrong_step, wrong_final, bad = t.score([p] * 4, [
        "47*6=282;47*30=1410;282+1410=1692",
        "47*6=281;47*30=1410;281+1410=1692",   # a false step but the right final answer
        "47*6=282;47*30=1410;282+1410=1690",
        "1692 is the answer",
    ])
    assert good.correct and good.info["steps_ok"]
    assert wrong_step.correct and not wrong_step.info["steps_ok"]
    assert not wrong_final.correct and wrong_final.total == pytest.approx(0.1)
    assert not bad.correct and bad.format == 0.0
    ps = t.generate(40, 0)
    assert all(r.correct and r.info["steps_ok"] for r in t.score(ps, [t.demonstration(q) for q in ps]))


def test_bad_parameters():
    with pytest.raises(LumosError, match="'digits' parameter of AdditionTask"):
        get_task("addition", digits=0)
    with pytest.raises(LumosError, match="'format_weight'"):
        get_task("addition", format_weight=2.0)
    with pytest.raises(LumosError, match="one of the registered tasks"):
        get_task("calculus")
    with pytest.raises(LumosError, match="'completions'"):
        get_task("addition").score([Problem("1+1=", 2)], [])

import pytest

from lumos.core.errors import LumosError
from lumos.rl.tasks import get_task
from lumos.rl.tasks.base import Problem


def _p(a, b):
    return Problem(f"{a}+{b}=", a + b, {"a": a, "b": b, "guess": 0, "fork": False})


def test_guess_check_verifier():
    t = get_task("guess-check", require_check=False)
    p = _p(3, 4)
    r = t.score([p] * 8, ["7", "5", "5?3+4=7", "7?3+4=8", "5?4+3=7", "5?3+4=", "?3+4=7", " 2?3+4=7\n"])
    assert [x.correct for x in r] == [True, False, True, False, False, False, False, True]
    assert [x.total for x in r] == [1.0, 0.1, 1.0, 0.1, 0.1, 0.0, 0.0, 1.0]
    assert [x.info["fork"] for x in r] == [False, False, True, True, True, True, True, True]
    assert r[4].info["restated"] is False      # the check must restate the prompt's own operands
    strict = get_task("guess-check")            # default: only a verified answer counts
    r = strict.score([p] * 3, ["7", "5?3+4=7", "7?3+4=8"])
    assert [x.correct for x in r] == [False, True, False] and [x.total for x in r] == [0.1, 1.0, 0.1]
    assert r[0].info["guess_right"] is True


def test_guess_check_demonstrations_are_rare_forks_that_pay():
    rare = get_task("guess-check", demo_fork_rate=0.05, require_check=False)
    ps = rare.generate(4000, seed=3)
    assert ps == rare.generate(4000, seed=3)
    demos = [rare.demonstration(p) for p in ps]
    rewards = rare.score(ps, demos)
    fork = [r.info["fork"] for r in rewards]
    assert 0.03 < sum(fork) / len(ps) < 0.07
    # every forked demonstration is right; a direct guess is right about 1/9 of the time (operands 0..4)
    assert all(r.correct for r, f in zip(rewards, fork) if f)
    direct = [r.correct for r, f in zip(rewards, fork) if not f]
    assert 0.08 < sum(direct) / len(direct) < 0.15
    always = get_task("guess-check", demo_fork_rate=1.0)
    qs = always.generate(50, seed=3)     # the fork of a demonstration is drawn with its problem
    assert all(r.correct and r.info["fork"] for r in always.score(qs, [always.demonstration(q) for q in qs]))
    assert all(0 <= p.meta["a"] <= 4 and 0 <= p.meta["b"] <= 4 for p in ps)


def test_guess_check_bad_parameters():
    with pytest.raises(LumosError, match="'demo_fork_rate' parameter of GuessCheckTask"):
        get_task("guess-check", demo_fork_rate=1.5)
    with pytest.raises(LumosError, match="'max_operand'"):
        get_task("guess-check", max_operand=0)

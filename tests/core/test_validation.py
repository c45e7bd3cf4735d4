"""core/validation.py: the check helpers and the declarative constraints share one message shape."""

import dataclasses
import math

import pytest
import torch

from lumos.core.errors import LumosError, LumosTypeError
from lumos.core.validation import (
    NONNEG_INT,
    POSITIVE,
    Boolean,
    InstanceOf,
    Interval,
    Options,
    Problems,
    Satisfies,
    check_choice,
    check_float,
    check_int,
    check_tensor,
    constraint,
    describe_constraints,
    field_problems,
)


@pytest.mark.parametrize("c,ok,bad", [
    (Interval(int, 1, None, closed="left"), [1, 5, 10**30], [0, -1, 1.0, True, None, "1"]),
    (Interval(float, 0, 1, closed="neither"), [0.5, 1e-9], [0, 1, float("nan"), math.inf, False]),
    (Interval(float, 0, 1, closed="right"), [1, 0.2], [0, 1.5]),
    (Interval(float, None, None), [-1e300, 0, 3], [math.inf, float("nan")]),
    (Options(str, ("a", "b")), ["a", "b"], ["c", 1, None]),
    (Boolean(), [True, False], [0, 1, "True"]),
    (InstanceOf(dict), [{}, {"a": 1}], [[], None]),
    (InstanceOf(int), [3], [True]),  # a bool is not an int
    (Satisfies(lambda v: v % 2 == 0, "an even number"), [2, 0], [3, "x"]),  # TypeError counts as not satisfied
])
def test_constraints(c, ok, bad):
    assert all(c.is_satisfied_by(v) for v in ok), ok
    assert not any(c.is_satisfied_by(v) for v in bad), bad


def test_descriptions_read_after_must_be():
    assert str(Interval(int, 1, None, closed="left")) == "an int in the range [1, inf)"
    assert str(Interval(float, 0, 1, closed="neither")) == "a float in the range (0, 1)"
    assert str(Options(str, ("x", "y"))) == "a str among {'x', 'y'}"
    assert describe_constraints([NONNEG_INT, None]) == "an int in the range [0, inf) or None"
    assert describe_constraints([Boolean(), InstanceOf(str), None]) == "an instance of 'bool', an instance of 'str' or None"


@dataclasses.dataclass
class _Cfg:
    lr: float = dataclasses.field(default=0.1, metadata=constraint(POSITIVE, help="learning rate"))
    n: int | None = dataclasses.field(default=None, metadata=constraint(NONNEG_INT, None))
    free: str = "anything"


def test_field_problems_and_one_aggregate_message():
    assert field_problems(_Cfg()) == {}
    assert dataclasses.fields(_Cfg)[0].metadata["help"] == "learning rate"
    probs = field_problems(_Cfg(lr=-1.0, n=-2, free=3))  # type: ignore[arg-type]
    assert probs == {"lr": "The 'lr' parameter of _Cfg must be a float in the range (0, inf). Got -1.0 instead.",
                     "n": "The 'n' parameter of _Cfg must be an int in the range [0, inf) or None. Got -2 instead."}
    p = Problems("_Cfg")
    assert p.fields(_Cfg(lr=float("nan"), n=-2)) == {"lr", "n"} and not p.ok("lr") and p.ok("free")
    p.param("free", "non-empty", "''", fix="Name it.")
    p.require(False, "a rule relating fields broke")
    with pytest.raises(LumosError) as exc:
        p.raise_if_any()
    msg = str(exc.value)
    assert msg.startswith("4 problems in _Cfg: The 'lr' parameter of _Cfg must be") and "\n" not in msg
    assert msg.endswith("Got '' instead. Name it. a rule relating fields broke.")
    assert len(exc.value.problems) == 4
    Problems("empty").raise_if_any()  # nothing collected: no error


def test_constraint_refuses_non_constraints():
    with pytest.raises(LumosError, match="constraint\\(\\) takes Constraint objects"):
        constraint(int)  # type: ignore[arg-type]


def test_check_helpers_share_the_shape():
    with pytest.raises(LumosTypeError, match=r"^The 'k' parameter of X must be a positive int\. Got True instead\.$"):
        check_int(True, "k", 1, owner="X")
    with pytest.raises(LumosError, match=r"must be a finite number in the range \[0, 1\]\. Got nan instead"):
        check_float(float("nan"), "p", 0.0, 1.0)
    with pytest.raises(LumosError, match="must be one of 'a', 'b'. Got 'c' instead"):
        check_choice("c", "mode", ("a", "b"))
    with pytest.raises(LumosError, match=r"must be of shape \(2, \*\)\. Got shape \(3, 4\) instead"):
        check_tensor(torch.zeros(3, 4), "x", shape=(2, None))
    assert check_float(None, "x", allow_none=True) is None and check_int(3, "k", 1, 5) == 3

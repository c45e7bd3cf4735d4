"""rl/config.py: RLConfig's constraints are declared once (field metadata) and reported in one message."""

import dataclasses
import re

import pytest

from lumos.core.errors import LumosError
from lumos.rl.config import RLConfig

ONE = re.compile(r"The '(\w+)' parameter of RLConfig must be .+?\. Got .+? instead\.")


def test_every_field_declares_its_constraint_and_help():
    for f in dataclasses.fields(RLConfig):
        assert f.metadata.get("constraints"), f.name
        assert f.metadata.get("help"), f.name


@pytest.mark.parametrize("name,bad", [
    ("steps", 0), ("steps", True), ("steps", 2.5), ("lr", float("nan")), ("lr", 0.0), ("temperature", -1.0),
    ("lr_schedule", "cosinee"), ("adam_beta1", 1.0), ("eps_low", -0.1), ("dynamic_sampling", "yes"),
    ("task_kwargs", [1]), ("algo", "ppo"), ("task", ""), ("seed", -1), ("group_size", 1),
])
def test_each_bad_value_gives_the_one_message_shape(name, bad):
    with pytest.raises(LumosError) as exc:
        RLConfig(**{name: bad})
    msg = str(exc.value)
    m = ONE.fullmatch(msg.split(" Each optimizer")[0]) or ONE.match(msg)
    assert m and m[1] == name, msg
    assert f"Got {bad!r} instead." in msg, msg


def test_every_problem_in_one_message():
    with pytest.raises(LumosError) as exc:
        RLConfig(steps=0, lr=-1.0, lr_schedule="x", eval_samples=-2)
    msg = str(exc.value)
    assert msg.startswith("4 problems in RLConfig: ")
    assert [m[1] for m in ONE.finditer(msg)] == ["steps", "lr", "lr_schedule", "eval_samples"]


def test_issue27_contradictions_are_refused():
    # group of one: every group-relative advantage is 0, nothing is learnt
    with pytest.raises(LumosError, match=r"'group_size' parameter of RLConfig must be an int in the range \[2, inf\)"):
        RLConfig(group_size=1)
    # more optimizer steps than samples: --minibatches 8 with a 1-prompt × 2-sample batch
    with pytest.raises(LumosError, match=r"'minibatches' parameter of RLConfig must be ≤ the samples of a rollout "
                       r"batch \(prompts_per_step × group_size = 2\)\. Got 8 instead"):
        RLConfig(prompts_per_step=1, group_size=2, minibatches=8)
    assert RLConfig(prompts_per_step=1, group_size=2, minibatches=2).minibatches == 2
    # the unified mask's ε without the unified mask
    with pytest.raises(LumosError, match="'mask_eps_low' parameter of RLConfig must be None unless unified_mask=True"):
        RLConfig(mask_eps_low=0.1, unified_mask=False)
    cfg = RLConfig(mask_eps_low=0.1, unified_mask=True)
    assert cfg.loss_kwargs()["mask_eps_low"] == 0.1


def test_round_trip_and_unknown_fields():
    cfg = RLConfig(algo="grpo", beta=0.05, task_kwargs={"digits": 2})
    assert RLConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(LumosError, match="Unknown RLConfig field"):
        RLConfig.from_dict({**cfg.to_dict(), "nope": 1})

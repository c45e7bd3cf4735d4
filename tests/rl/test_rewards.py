"""TRL-style reward functions: the calling convention checked against TRL's own ``GRPOTrainer._calculate_rewards``."""

from __future__ import annotations

import math
import types

import pytest
import torch

from lumos.core.errors import LumosError
from lumos.rl.rewards import RewardFunctions, load_reward_functions


def contains_answer(prompts, completions, answer, **kwargs):
    return [1.0 if a in c else 0.0 for c, a in zip(completions, answer)]


def only_long(completions, **kwargs):
    """Skips (None) short completions: TRL's way of saying 'this reward does not apply'."""
    return [float(len(c)) if len(c) > 2 else None for c in completions]


def _trl_rewards(funcs, weights, inputs, prompts, completions, completion_ids):
    """TRL's per-function rewards (N, F) and its weighted sum with unscorable rows NaN (sum_then_normalize)."""
    trl_grpo = pytest.importorskip("trl.trainer.grpo_trainer")
    from accelerate import PartialState

    PartialState(cpu=True)
    fake = types.SimpleNamespace(
        accelerator=types.SimpleNamespace(device=torch.device("cpu"), is_main_process=True), reward_funcs=funcs,
        reward_processing_classes=[None] * len(funcs), reward_func_names=[f.__name__ for f in funcs],
        state=types.SimpleNamespace(global_step=0), _log_completion_extra=None, _log_metric=None, environments=None,
        args=types.SimpleNamespace(report_to=[]))
    per = trl_grpo.GRPOTrainer._calculate_rewards(fake, inputs, prompts, completions, completion_ids)
    w = torch.tensor(weights, dtype=torch.float32)
    total = (per * w[None]).nansum(dim=1)
    total[torch.isnan(per).all(dim=1)] = torch.nan
    return per, total


def test_same_rewards_as_trl():
    inputs = [{"prompt": "2+2=", "answer": "4", "level": 1}, {"prompt": "3+3=", "answer": "6", "level": 2},
              {"prompt": "1+1=", "answer": "2", "level": 1}]
    prompts = [r["prompt"] for r in inputs]
    completions = ["4", "the answer is 7", "x"]
    ids = [[4], [1, 2, 3], [9]]
    seen = {}

    def spy(prompts, completions, **kwargs):
        seen.update(kwargs)
        return [0.5] * len(prompts)

    funcs, weights = [contains_answer, only_long, spy], [1.0, 0.1, 2.0]
    per_trl, total_trl = _trl_rewards(funcs, weights, inputs, prompts, completions, ids)
    trl_keys = set(seen)
    seen.clear()
    rf = RewardFunctions(funcs, weights)
    columns = {"answer": [r["answer"] for r in inputs], "level": [r["level"] for r in inputs]}
    per = rf.per_function(prompts, completions, ids, columns)
    ours = torch.tensor([[math.nan if v is None else v for v in col] for col in per]).T
    torch.testing.assert_close(ours, per_trl, equal_nan=True)
    torch.testing.assert_close(torch.tensor(rf.combine(per)), total_trl, equal_nan=True)
    # the same keywords reach the function, except TRL's trainer hooks
    assert set(seen) == trl_keys - {"trainer_state", "log_extra", "log_metric"} == {"answer", "level", "completion_ids"}
    assert seen["completion_ids"] == ids and seen["level"] == [1, 2, 1]


def test_unscorable_sample_is_nan_and_weights_apply():
    rf = RewardFunctions([only_long, lambda completions, **kw: [None] * len(completions)], [2.0, 1.0])
    per = rf.per_function(["p", "q"], ["abcd", "a"], [[1], [2]], {})
    assert per == [[4.0, None], [None, None]]
    total = rf.combine(per)
    assert total[0] == 8.0 and math.isnan(total[1])


def test_function_without_kwargs_gets_only_what_it_names():
    def strict(completions, answer):
        return [float(c == a) for c, a in zip(completions, answer)]

    rf = RewardFunctions([strict])
    assert rf.per_function(["p"], ["4"], [[1]], {"answer": ["4"], "other": [0]}) == [[1.0]]


@pytest.mark.parametrize("fn,match", [
    (lambda completions, **kw: [1.0], "returned 1 rewards for 2 completions"),
    (lambda completions, **kw: 1.0, "returned float"),
    (lambda completions, **kw: [1.0, "yes"], "returned str"),
    (lambda completions, **kw: [1.0, float("nan")], "returned nan for completion 1"),
    (lambda completions, **kw: 1 / 0, "raised ZeroDivisionError"),
])
def test_user_bugs_are_one_clear_error(fn, match):
    rf = RewardFunctions([fn])
    with pytest.raises(LumosError, match=match) as err:
        rf.per_function(["p", "q"], ["a", "b"], [[1], [2]], {})
    assert "\n" not in str(err.value)


def test_bad_construction():
    with pytest.raises(LumosError, match="at least one"):
        RewardFunctions([])
    with pytest.raises(LumosError, match="2 reward weight"):
        RewardFunctions([only_long], [1.0, 2.0])
    with pytest.raises(LumosError, match="callable"):
        RewardFunctions([3])
    with pytest.raises(LumosError, match="reward_weights"):
        RewardFunctions([only_long], [float("nan")])


def test_load_from_a_file_without_pythonpath(tmp_path):
    f = tmp_path / "my_rewards.py"
    f.write_text("import numpy as np\n\ndef correct(completions, answer, **kw):\n"
                 "    return np.array([float(c.strip() == a) for c, a in zip(completions, answer)])\n")
    rf = load_reward_functions([f"{f}:correct"], [3.0])
    per = rf.per_function(["p", "q"], [" 4", "5"], [[1], [2]], {"answer": ["4", "4"]})
    assert per == [[1.0, 0.0]] and rf.combine(per) == [3.0, 0.0]

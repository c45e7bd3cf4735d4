"""Code tasks: known good solutions score 1, known bad ones score low, malformed answers score 0."""

from __future__ import annotations

import pytest

from lumos.core.errors import LumosError
from lumos.rl.tasks import get_task
from lumos.rl.tasks.code import ExpressionTask, FunctionTask, RepairTask
from lumos.rl.tasks.code.problems import FAMILIES, REPAIR_REPOS
from lumos.sandbox import SandboxLimits

QUICK = SandboxLimits(wall_time=1.5, cpu_time=1.0)


def test_registered():
    for name, cls in [("code-expr", ExpressionTask), ("code-functions", FunctionTask), ("code-repair", RepairTask)]:
        assert isinstance(get_task(name), cls)


def test_expression_task_rewards():
    task = ExpressionTask(workers=2, limits=QUICK)
    problems = task.generate(4, seed=0)
    assert problems == task.generate(4, seed=0) and "equal to" in problems[0].prompt
    target = problems[0].answer
    completions = [task.demonstration(problems[0]), f"{target + 1} - 1", f"{target} + 1000", str(target),
                   "(1 +", "__import__('os')._exit(0) or 1", "9 ** 9 ** 9", "'ab' * 2"]
    r = task.score([problems[0]] * len(completions), completions)
    assert [x.correct for x in r] == [True, True, False, False, False, False, False, False]
    assert r[0].total == r[1].total == 1.0
    assert 0.1 <= r[2].total < 0.5  # evaluates to a number: shaped partial credit
    assert r[3].total == 0.0 and r[3].format == 0.0  # a bare literal has no operator
    assert r[4].total == 0.0  # does not parse
    assert r[5].total == 0.1 and r[6].info["exit_reason"] == "timeout" and r[7].total == 0.1


def test_expression_rewards_rise_with_closeness():
    task = ExpressionTask(workers=1)
    p = task.generate(1, seed=3)[0]
    totals = [r.total for r in task.score([p] * 3, [f"{p.answer} + {d}" for d in (50, 10, 0)])]
    assert totals[0] < totals[1] < totals[2] == 1.0


def test_function_task_good_partial_and_bad():
    task = FunctionTask(workers=2, n_tests=6, limits=QUICK)
    problems = task.generate(len(FAMILIES), seed=1)
    good = task.score(problems, [task.demonstration(p) for p in problems])
    assert all(r.correct and r.total == pytest.approx(1.1) for r in good)
    assert not any(r.info["results_forgeable"] for r in good)  # hidden tests in their own process
    p = FunctionTask(families=["affine"], n_tests=6).generate(1, seed=2)[0]
    a, b = p.meta["params"]["a"], p.meta["params"]["b"]
    partial = f"```python\ndef f(x):\n    return {a} * x + {b} if x >= 0 else 0\n```"
    bad = "```python\ndef f(x):\n    while True:\n        pass\n```"
    malformed = "```python\ndef f(x):\n    return 1\n"
    r = task.score([p] * 3, [partial, bad, malformed])
    assert 0.1 < r[0].total < 1.1 and not r[0].correct
    assert r[1].total == pytest.approx(0.1) and r[1].info["exit_reason"] == "timeout"
    assert r[2].total == 0.0 and r[2].format == 0.0


def test_bad_task_arguments(tmp_path):
    with pytest.raises(LumosError, match="families"):
        FunctionTask(families=["nope"])
    with pytest.raises(LumosError, match="root"):
        RepairTask(root=tmp_path / "missing")
    with pytest.raises(LumosError, match="No repair tasks"):
        RepairTask(root=tmp_path)
    with pytest.raises(LumosError, match="completions"):
        ExpressionTask().score(ExpressionTask().generate(2, 0), ["1+1"])
    assert len(REPAIR_REPOS) >= 5


def test_one_cispo_step_on_code_expr():
    """Integration with the RL trainer: rollouts of a tiny model are scored in the sandbox."""
    import torch

    from lumos.models import tiny_hybrid
    from lumos.rl.config import RLConfig
    from lumos.rl.trainer import RLTrainer

    task = ExpressionTask(workers=2, high=19, limits=QUICK)
    cfg = RLConfig(algo="cispo", steps=1, prompts_per_step=2, group_size=2, minibatches=1, max_new_tokens=6,
                   eval_every=0, eval_problems=2, task="code-expr", seed=0)
    model = tiny_hybrid(32, 2, seed=0)
    trainer = RLTrainer(model, task, cfg)
    row = trainer.rl_step()
    assert 0.0 <= row["reward"] <= 1.0 and row["step"] == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # the trainer's reward is the task's: re-score a fixed completion through the same path
    p = task.generate(1, seed=0)[0]
    assert task.score([p], [task.demonstration(p)])[0].total == 1.0

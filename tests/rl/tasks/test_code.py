"""Code tasks: known good solutions score 1, known bad ones score low, malformed answers score 0."""

from __future__ import annotations

import difflib
import json

import pytest

from lumos.core.errors import LumosError
from lumos.rl.sandbox import SandboxLimits
from lumos.rl.sandbox.problems import FAMILIES, REPAIR_REPOS
from lumos.rl.tasks import get_task
from lumos.rl.tasks.code import ExpressionTask, FunctionTask, RepairTask, extract_code_block

QUICK = SandboxLimits(wall_time=1.5, cpu_time=1.0)


def test_registered():
    for name, cls in [("code-expr", ExpressionTask), ("code-functions", FunctionTask), ("code-repair", RepairTask)]:
        assert isinstance(get_task(name), cls)


@pytest.mark.parametrize("text, code, ok", [
    ("```python\nx = 1\n```", "x = 1", True),
    ("intro\n```py\nprint(2)\n```\nmore ```python\ny\n```", "print(2)", True),
    ("```python\ndef f(:\n```", "def f(:", False),
    ("```python\nx = 1\n", None, False),  # unclosed fence
    ("no code at all", None, False),
    ("```rust\nfn main() {}\n```", None, False),
])
def test_extract_code_block(text, code, ok):
    assert extract_code_block(text) == (code, ok)


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


def test_builtin_repos_fail_exactly_their_failing_tests():
    task = RepairTask(workers=2)
    for repo in task.repos:
        v = task.pool.map([task._repo_job(repo, repo["files"])])[0]
        assert set(v.failed) == set(repo["failing"]), repo["name"]
        assert set(task.baseline_passing(repo)) == set(v.passed)


def test_repair_rewards():
    task = RepairTask(workers=2)
    problems = task.generate(8, seed=0)
    r = task.score(problems, [task.demonstration(p) for p in problems])
    assert all(x.total == 1.0 and x.correct for x in r)
    assert not any(x.info["results_forgeable"] for x in r)  # the tests run in the trusted runner
    stats = next(p for p in task.generate(40, seed=1) if p.meta["repo"] == "stats")
    buggy = task._repo(stats)["files"]["stats.py"]
    fixed_but_breaks_median = buggy.replace("(len(xs) - 1)", "len(xs)") + "\n\nmedian = mean\n"
    breaks_median = "".join(difflib.unified_diff(buggy.splitlines(True), fixed_but_breaks_median.splitlines(True),
                                                 "a/stats.py", "b/stats.py"))
    edits_test = ("--- a/test_stats.py\n+++ b/test_stats.py\n@@ -4,2 +4,2 @@\n def test_mean():\n"
                  "-    assert mean([1, 2, 3, 6]) == 3\n+    assert True\n")
    outside = "--- a/../stats.py\n+++ b/../stats.py\n@@ -1 +1 @@\n-x\n+y\n"
    garbage = "```diff\nthis is not a diff\n```"
    r = task.score([stats] * 4, [f"```diff\n{breaks_median}```", edits_test, outside, garbage])
    assert r[0].total == 0.0 and r[0].format == 1.0  # the failing test passes but another one breaks
    assert "protected" in r[1].info["error"] and r[1].total == 0.0
    assert "outside" in r[2].info["error"] and r[3].info["exit_reason"] == "patch"


def _user_task(root, name, command=None, harness=None):
    d = root / name
    (d / "repo").mkdir(parents=True)
    (d / "repo" / "lib.py").write_text("def double(x):\n    return x + x + 1\n")
    (d / "repo" / "test_lib.py").write_text("from lib import double\n\ndef test_double():\n    assert double(2) == 4\n")
    meta = {"failing_tests": ["test_lib.py::test_double"], "description": "double is off by one.",
            "fix": "--- a/lib.py\n+++ b/lib.py\n@@ -1,2 +1,2 @@\n def double(x):\n-    return x + x + 1\n"
                   "+    return x + x\n"}
    if command:
        meta["test_command"] = command
    if harness:
        meta["harness"] = harness
    (d / "task.json").write_text(json.dumps(meta))


def test_user_repair_tasks_from_directory(tmp_path):
    _user_task(tmp_path, "a")
    _user_task(tmp_path, "b", ["python", "-c", "from lib import double; assert double(2) == 4"])
    _user_task(tmp_path, "c", harness="in-process")
    task = get_task("code-repair", root=str(tmp_path), workers=2)
    problems = sorted(task.generate(9, seed=0), key=lambda p: p.meta["repo"])
    assert {p.meta["repo"] for p in problems} == {"a", "b", "c"} and "off by one" in problems[0].prompt
    r = task.score(problems, [task.demonstration(p) for p in problems])
    assert all(x.total == 1.0 for x in r)
    forgeable = {p.meta["repo"]: x.info["results_forgeable"] for p, x in zip(problems, r)}
    assert forgeable == {"a": False, "b": True, "c": True}
    r = task.score(problems[:1] + problems[-1:], ["--- a/lib.py\n+++ b/lib.py\n@@ -1 +1 @@\n-def double(x):\n"
                                                   "+def double(y):\n"] * 2)
    assert [x.total for x in r] == [0.0, 0.0]
    _user_task(tmp_path / "bad", "d", harness="subprocess")
    with pytest.raises(LumosError, match="'harness' must be one of runner, in-process"):
        get_task("code-repair", root=str(tmp_path / "bad"))


def test_check_repair_tasks(tmp_path, capsys):
    from lumos.cli.main import main

    _user_task(tmp_path, "a")
    _user_task(tmp_path, "b")
    meta = json.loads((tmp_path / "b" / "task.json").read_text())
    (tmp_path / "b" / "task.json").write_text(json.dumps(dict(meta, failing_tests=["test_lib.py::test_other"])))
    d = tmp_path / "c" / "repo"
    d.mkdir(parents=True)
    (d / "point.py").write_text("class P:\n    def __init__(self, x):\n        self.x = x\n")
    (d / "test_point.py").write_text("from point import P\n\ndef test_eq():\n    assert P(1) == P(1)\n")
    fix = ("--- a/point.py\n+++ b/point.py\n@@ -3 +3,3 @@\n         self.x = x\n+    def __eq__(self, o):\n"
           "+        return self.x == o.x\n")
    (tmp_path / "c" / "task.json").write_text(json.dumps({"failing_tests": ["test_point.py::test_eq"], "fix": fix}))
    task = RepairTask(root=tmp_path, workers=2)
    rows = {r["task"]: r for r in task.check()}
    assert rows["a"]["problems"] == [] and rows["a"]["fix_reward"] == 1.0 and rows["a"]["failing"] == ["test_lib.py::test_double"]
    assert "failing_tests says ['test_lib.py::test_other']" in rows["b"]["problems"][0]
    assert rows["c"]["fix_reward"] == 0.0 and '"harness": "in-process"' in rows["c"]["problems"][-1]
    assert main(["sandbox", "check-tasks", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "a: runner harness, 1 tests, failing test_lib.py::test_double; fix reward 1; ok" in out and "PROBLEMS" in out
    assert main(["sandbox", "check-tasks", str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize("meta, needle", [
    ("{bad", "is not valid JSON"),
    ("[1]", "must hold a JSON object"),
    ('{"description": "x"}', "needs 'failing_tests'"),
    ('{"failing_tests": "test_m.py::t"}', "'failing_tests' must be a list of strings"),
    ('{"failing_tests": [], "test_command": "pytest"}', "'test_command' must be a list of strings"),
    ('{"failing_tests": [], "fix": 3}', "'fix' must be a string"),
])
def test_bad_task_json_is_one_clear_error(tmp_path, capsys, meta, needle):
    from lumos.cli.main import main

    (tmp_path / "t" / "repo").mkdir(parents=True)
    (tmp_path / "t" / "repo" / "m.py").write_text("x = 1\n")
    (tmp_path / "t" / "task.json").write_text(meta)
    assert main(["sandbox", "check-tasks", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "task.json" in err and len(err.strip().splitlines()) == 1, err


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

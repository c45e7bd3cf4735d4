"""Red-team round 3 (issue 27) against the code tasks: each attack next to its honest twin.

Contained here: unittest's control flow from a repair (reward 0 for the bug left in), test helpers the diff
can reach (protected, and run in the trusted runner), unbounded host-side work on model output (hunk
offsets, parser bombs: reward 0 with a reason, never an exception into the trainer).
"""

from __future__ import annotations

import difflib
import json
import math

import pytest

from lumos.rl.tasks import available_tasks, get_task
from lumos.rl.tasks.base import Problem
from lumos.rl.tasks.code import RepairTask
from lumos.rl.tasks.code.problems import REPAIR_REPOS
from lumos.sandbox import SandboxLimits

QUICK = SandboxLimits(wall_time=3.0, cpu_time=2.0, per_test_time=1.0)


def _diff(path: str, old: str, new: str) -> str:
    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}")
    return "```diff\n" + "".join(lines) + "```\n"


def _new_file(path: str, text: str) -> str:
    body = "".join(f"+{line}\n" for line in text.splitlines())
    return f"```diff\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(text.splitlines())} @@\n{body}```\n"


def test_inventory_with_the_bug_left_in_gets_nothing():
    task = RepairTask(workers=2, limits=QUICK)
    problem = Problem("", None, {"repo": "inventory"})
    src = next(r for r in REPAIR_REPOS if r["name"] == "inventory")["files"]["inventory.py"]
    stop = _diff("inventory.py", src, "import unittest.case\n" + src.replace(
        "        self.counts = {}\n", "        raise unittest.case._ShouldStop()\n"))
    skip = _diff("inventory.py", src, "import unittest\n" + src.replace(
        "        self.counts = {}\n", "        raise unittest.SkipTest('later')\n"))
    fix = _diff("inventory.py", src, src.replace("n > have + 1", "n > have"))
    honest, *attacks = task.score([problem] * 3, [fix, stop, skip])
    assert honest.total == 1.0, honest.info
    assert [a.total for a in attacks] == [0.0, 0.0], [a.info for a in attacks]


HELPER_REPO = {
    "lib.py": "def double(x):\n    return x + x + 1\n",
    "tests/helpers.py": "def check(got, want):\n    assert got == want, (got, want)\n",
    "tests/test_lib.py": "from helpers import check\nfrom lib import double\n\n\ndef test_double():\n"
                         "    check(double(2), 4)\n\n\ndef test_zero():\n    check(double(0), 0)\n",
}


def _helper_task(tmp_path, files=HELPER_REPO, **meta):
    repo = tmp_path / "t" / "repo"
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    (tmp_path / "t" / "task.json").write_text(json.dumps(
        {"failing_tests": ["tests/test_lib.py::test_double", "tests/test_lib.py::test_zero"], **meta}))
    return RepairTask(root=tmp_path, workers=2, limits=QUICK)


@pytest.mark.parametrize("harness", ["runner", "in-process"])
def test_test_helpers_cannot_be_edited_or_shadowed(tmp_path, harness):
    task = _helper_task(tmp_path, harness=harness)
    problem = Problem("", None, {"repo": "t"})
    helper = HELPER_REPO["tests/helpers.py"]
    fix = _diff("lib.py", HELPER_REPO["lib.py"], "def double(x):\n    return x + x\n")
    noop = _diff("tests/helpers.py", helper, "def check(got, want):\n    pass\n")
    shadow = _new_file("helpers.py", "def check(got, want):\n    pass\n")  # a root module named like the helper
    conftest = _new_file("conftest.py", "import builtins\n")
    extra = _new_file("tests/test_more.py", "def test_nothing():\n    pass\n")
    honest, *attacks = task.score([problem] * 5, [fix, noop, shadow, conftest, extra])
    assert honest.total == 1.0, honest.info
    assert [a.total for a in attacks] == [0.0] * 4, [a.info for a in attacks]
    assert all("protected" in a.info["error"] for a in (attacks[0], attacks[2], attacks[3])), [a.info for a in attacks]
    assert task.repos[0]["support_files"] == ["tests/helpers.py"]


def test_helpers_outside_a_tests_directory_are_declared(tmp_path):
    files = {"lib.py": HELPER_REPO["lib.py"], "check_util.py": HELPER_REPO["tests/helpers.py"],
             "tests/test_lib.py": HELPER_REPO["tests/test_lib.py"].replace("from helpers", "from check_util")}
    problem = Problem("", None, {"repo": "t"})
    noop = _diff("check_util.py", files["check_util.py"], "def check(got, want):\n    pass\n")
    undeclared = _helper_task(tmp_path / "a", files)
    declared = _helper_task(tmp_path / "b", files, test_support=["check_util.py"])
    assert undeclared.score([problem], [noop])[0].total == 1.0  # what test_support is for
    assert declared.score([problem], [noop])[0].total == 0.0


# ------------------------------------------------------------------------------------------ bounds
HOSTILE = [
    "", " ", "\x00", "\ud800", "```", "```python\n", "```diff\n```", "x" * 100_001,
    "-" * 5000 + "1", "(" * 5000 + "1" + ")" * 5000, "not " * 20_000 + "1", "1" + "+1" * 30_000,
    "9" * 5000, "1e309", "9**9**9", "[" * 3000 + "]" * 3000,
    "```python\n" + "".join(" " * i + "if x:\n" for i in range(200)) + "```",
    "```python\n" + "f(" * 3000 + ")" * 3000 + "\n```",
    "--- a/stats.py\n+++ b/stats.py\n@@ -99999999999999999999999 +1 @@\n-x\n+y\n",
    "--- a/stats.py\n+++ b/stats.py\n@@ -999999999,1 +1 @@\n-x\n+y\n",  # 112 bytes, a huge offset
    "--- a/stats.py\n+++ b/stats.py\n@@ -1," + "9" * 4400 + " +1 @@\n-x\n",
    "```diff\n" + "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n" * 2000 + "```",
    "{" * 10_000, "```" * 20_000, "```py\n" * 20_000,
]


def _every_builtin_task(tmp_path):
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"prompt": "2+2=", "answer": "4"}\n{"prompt": "1+2=", "answer": 3}\n')
    for name in available_tasks():
        kwargs = {"path": str(jsonl)} if name == "jsonl" else {}
        if name.startswith("code-"):
            kwargs.update(workers=2, limits=QUICK)
        yield name, get_task(name, **kwargs)


def test_every_scorer_of_every_builtin_task_survives_hostile_completions(tmp_path):
    seen = []
    for name, task in _every_builtin_task(tmp_path):
        problems = task.generate(1, seed=0)
        if name == "code-repair":
            problems = [p for p in task.generate(40, seed=0) if p.meta["repo"] == "stats"][:1]
        batch = [(p, c) for c in HOSTILE for p in problems]
        rewards = task.score([p for p, _ in batch], [c for _, c in batch])
        assert len(rewards) == len(batch), name
        for (_, c), r in zip(batch, rewards):
            assert math.isfinite(r.total) and 0.0 <= r.total <= 1.0 and not r.correct, (name, c[:60], r)
        if name.startswith("code-"):
            zero = [r for r in rewards if r.total == 0.0]
            assert zero and all("exit_reason" in r.info for r in zero), name
        seen.append(name)
    assert {"code-expr", "code-functions", "code-repair", "addition", "countdown", "jsonl"} <= set(seen)


def test_host_side_failures_are_zero_rewards_with_a_reason():
    expr = get_task("code-expr", workers=1, limits=QUICK)
    p = expr.generate(1, seed=0)[0]
    r = expr.score([p] * 3, ["-" * 3000 + "1", "x" * 100_001, f"{p.answer} + 0"])
    assert [x.info["exit_reason"] for x in r[:2]] == ["format", "too_long"] and r[2].total == 1.0
    repair = RepairTask(workers=1, limits=QUICK)
    stats = Problem("", None, {"repo": "stats"})
    huge = "--- a/stats.py\n+++ b/stats.py\n@@ -999999999,1 +1 @@\n-x\n+y\n"
    assert len(huge) <= 112
    r = repair.score([stats], [huge])[0]
    assert r.total == 0.0 and r.info["exit_reason"] == "patch" and "does not apply" in r.info["error"]

    class Exploding(RepairTask):
        def _job(self, problem, completion):
            raise RecursionError("maximum recursion depth exceeded")

    r = Exploding(workers=1).score([stats], ["anything"])[0]
    assert r.total == 0.0 and r.info == {"exit_reason": "host_error",
                                         "error": "RecursionError: maximum recursion depth exceeded"}
    with pytest.raises(Exception, match="repo"):  # a misuse still raises: a problem of another task
        repair.score([Problem("", None, {"repo": "nope"})], ["x"])

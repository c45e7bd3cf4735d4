"""code-repair: built-in repositories, rewards of fixes, regressions, protected tests and bad diffs."""

from __future__ import annotations

import difflib

from lumos.rl.tasks.code import RepairTask


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



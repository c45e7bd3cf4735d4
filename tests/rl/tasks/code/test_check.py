"""``lumos rl check-tasks``: sound tasks ok, declared failures checked, bad task.json one clear line."""

from __future__ import annotations

import json

import pytest
from tests.rl.tasks.code._repos import make_user_task

from lumos.rl.tasks.code import RepairTask


def test_check_repair_tasks(tmp_path, capsys):
    from lumos.cli.main import main

    make_user_task(tmp_path, "a")
    make_user_task(tmp_path, "b")
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
    assert main(["rl", "check-tasks", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "a: runner harness, 1 tests, failing test_lib.py::test_double; fix reward 1; ok" in out and "PROBLEMS" in out
    assert main(["rl", "check-tasks", str(tmp_path / "missing")]) == 2


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
    assert main(["rl", "check-tasks", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "task.json" in err and len(err.strip().splitlines()) == 1, err




def test_check_tasks_reports_vacuous_tasks(tmp_path, capsys):
    from lumos.cli.main import main

    make_user_task(tmp_path, "sound")
    nothing_fails = tmp_path / "nothing_fails" / "repo"
    nothing_fails.mkdir(parents=True)
    (nothing_fails / "lib.py").write_text("def double(x):\n    return x + x\n")
    (nothing_fails / "test_lib.py").write_text("from lib import double\n\ndef test_double():\n    assert double(2) == 4\n")
    (tmp_path / "nothing_fails" / "task.json").write_text(json.dumps({"failing_tests": []}))
    generator = tmp_path / "generator" / "repo"
    generator.mkdir(parents=True)
    (generator / "lib.py").write_text("def double(x):\n    return x + x + 1\n")
    (generator / "test_lib.py").write_text("from lib import double\n\ndef test_double():\n    assert double(2) == 4\n\n"
                                           "def test_gen():\n    assert double(0) == 0\n    yield\n")
    (tmp_path / "generator" / "task.json").write_text(json.dumps(
        {"failing_tests": ["test_lib.py::test_double", "test_lib.py::test_gen"]}))
    rows = {r["task"]: r for r in RepairTask(root=tmp_path, workers=2).check()}
    assert rows["sound"]["problems"] == []
    assert any("no test fails before the fix" in p for p in rows["nothing_fails"]["problems"]), rows["nothing_fails"]
    assert any("cannot run" in p and "test_lib.py::test_gen" in p and "generator" in p
               for p in rows["generator"]["problems"]), rows["generator"]
    assert main(["rl", "check-tasks", str(tmp_path)]) == 1
    lines = {line.split(":")[0]: line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")}
    assert lines["sound"].endswith("; ok") and lines["nothing_fails"].endswith("PROBLEMS"), lines
    assert lines["generator"].endswith("PROBLEMS"), lines


def test_check_tasks_names_a_link_in_one_line(tmp_path, capsys):
    from lumos.cli.main import main

    make_user_task(tmp_path, "t")
    (tmp_path / "t" / "repo" / "env.txt").symlink_to("/proc/self/environ")
    assert main(["rl", "check-tasks", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "t/repo/env.txt is a symbolic link" in err and len(err.splitlines()) == 1, err

"""User repair tasks from a directory."""

from __future__ import annotations

import pytest
from tests.rl.tasks.code._repos import make_user_task

from lumos.core.errors import LumosError
from lumos.rl.tasks import get_task


def test_user_repair_tasks_from_directory(tmp_path):
    make_user_task(tmp_path, "a")
    make_user_task(tmp_path, "b", ["python", "-c", "from lib import double; assert double(2) == 4"])
    make_user_task(tmp_path, "c", harness="in-process")
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
    make_user_task(tmp_path / "bad", "d", harness="subprocess")
    with pytest.raises(LumosError, match="'harness' must be one of runner, in-process"):
        get_task("code-repair", root=str(tmp_path / "bad"))



"""User repair tasks from a directory."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from tests.rl.tasks.code._repos import make_user_task

from lumos.core.errors import LumosError
from lumos.rl.tasks import get_task
from lumos.rl.tasks.code.loader import dirs_of_tests, load_repair_dir, support_files


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




# ------------------------------------------------------------------------------- hostile task directories
@pytest.mark.parametrize("where", ["repo file", "repo dir", "task dir", "task.json", "repo subdir"])
def test_links_are_errors_that_name_them_and_nothing_is_read_through_them(tmp_path, where):
    secret = tmp_path / "secret.txt"
    secret.write_text("HOST SECRET\n")
    os.chmod(secret, 0o600)
    root = tmp_path / "tasks"
    make_user_task(root, "t")
    t = root / "t"
    link = {"repo file": t / "repo" / "notes.txt", "repo dir": t / "repo", "task dir": root / "u",
            "task.json": t / "task.json", "repo subdir": t / "repo" / "data"}[where]
    target = {"repo dir": tmp_path, "task dir": t, "repo subdir": tmp_path,
              "task.json": t / "task.json.real"}.get(where, secret)
    if where == "task.json":
        (t / "task.json").rename(target)
    elif link.exists():
        shutil.rmtree(link)
    os.symlink(target, link)
    with pytest.raises(LumosError, match="symbolic link") as err:
        load_repair_dir(root)
    assert str(link.relative_to(root)) in str(err.value) and "HOST SECRET" not in str(err.value)
    assert "\n" not in str(err.value)


def test_special_and_hard_linked_files_are_refused(tmp_path):
    root = tmp_path / "tasks"
    make_user_task(root, "t")
    os.mkfifo(root / "t" / "repo" / "pipe")
    with pytest.raises(LumosError, match="pipe is not a regular file"):
        load_repair_dir(root)
    os.unlink(root / "t" / "repo" / "pipe")
    outside = tmp_path / "outside.txt"
    outside.write_text("HOST SECRET\n")
    os.link(outside, root / "t" / "repo" / "notes.txt")
    with pytest.raises(LumosError, match="notes.txt has other hard links"):
        load_repair_dir(root)
    os.unlink(root / "t" / "repo" / "notes.txt")
    assert [r["name"] for r in load_repair_dir(root)] == ["t"]  # the honest twin


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root")
def test_a_users_task_directory_is_read_as_that_user(tmp_path):
    uid = 2_500_000 + os.getpid() % 1000
    root = tmp_path / "tasks"
    make_user_task(root, "t")
    for dirpath, dirnames, filenames in os.walk(root / "t"):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.chown(name, uid, uid)
    repos = load_repair_dir(root)  # the honest twin: the owner reads its own files
    assert repos[0]["files"]["lib.py"].startswith("def double")
    private = root / "t" / "repo" / "root_only.txt"  # e.g. what a hard link to a root-only file would give
    private.write_text("HOST SECRET\n")
    os.chmod(private, 0o600)
    with pytest.raises(LumosError, match="root_only.txt cannot be read") as err:
        load_repair_dir(root)
    assert "HOST SECRET" not in str(err.value)


def test_task_json_checks(tmp_path):
    root = tmp_path / "tasks"
    make_user_task(root, "t")
    meta = json.loads((root / "t" / "task.json").read_text())
    (root / "t" / "task.json").write_text(json.dumps(dict(meta, test_files=["test_missing.py"])))
    with pytest.raises(LumosError, match=r"test_files \['test_missing.py'\] are not in its repo"):
        load_repair_dir(root)
    (root / "t" / "task.json").write_text("[" * 100_000)
    with pytest.raises(LumosError, match="is not valid JSON"):
        load_repair_dir(root)


def test_support_files_and_tests_dirs():
    files = {"lib.py": "", "tests/test_a.py": "", "tests/helpers.py": "", "tests/data/x.json": "", "conftest.py": "",
             "pkg/mod.py": "", "pkg/test_mod.py": "", "pkg/conftest.py": "", "util.py": ""}
    tests = ["tests/test_a.py", "pkg/test_mod.py"]
    assert dirs_of_tests(tests) == ["tests"] and dirs_of_tests(tests, ["util.py"]) == ["tests", "util.py"]
    assert support_files(files, tests) == ["conftest.py", "pkg/conftest.py", "tests/data/x.json", "tests/helpers.py"]
    assert "util.py" in support_files(files, tests, ["util.py"]) and "pkg/mod.py" not in support_files(files, tests)


def test_names_that_are_not_utf8_are_one_clear_error(tmp_path):
    root = tmp_path / "tasks"
    make_user_task(root, "t")
    bad = os.path.join(os.fsencode(root / "t" / "repo"), b"caf\xe9.py")
    with open(bad, "w") as f:
        f.write("x = 1\n")
    with pytest.raises(LumosError, match=r"'caf\\udce9.py' is not a UTF-8 name"):
        load_repair_dir(root)
    os.unlink(bad)
    os.rename(root / "t", os.path.join(os.fsencode(root), b"t\xff"))
    with pytest.raises(LumosError, match="is not a UTF-8 name"):
        load_repair_dir(root)

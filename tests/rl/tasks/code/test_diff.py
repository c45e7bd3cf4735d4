"""The diff applier against two oracles: difflib produces the diff, GNU patch applies it too."""

from __future__ import annotations

import difflib
import random
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumos.rl.tasks.code import diff
from lumos.rl.tasks.code.diff import PatchError, apply_patch, check_repo_path, parse_unified_diff


def _udiff(a: str, b: str, path: str = "f.txt") -> str:
    out = []
    for line in difflib.unified_diff(a.splitlines(True), b.splitlines(True), f"a/{path}", f"b/{path}"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _random_edit(rng: random.Random) -> tuple[str, str]:
    a = [f"line {rng.randint(0, 5)}" for _ in range(rng.randint(0, 25))]
    b = list(a)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.4 and b:
            b[rng.randrange(len(b))] = f"new {rng.randint(0, 99)}"
        elif op < 0.7:
            b.insert(rng.randint(0, len(b)), f"ins {rng.randint(0, 99)}")
        elif b:
            del b[rng.randrange(len(b))]
    end = lambda lines: "\n".join(lines) + ("\n" if lines and rng.random() < 0.8 else "")
    return end(a), end(b)


def test_matches_difflib_and_gnu_patch(tmp_path):
    rng = random.Random(0)
    has_patch = shutil.which("patch") is not None
    checked = 0
    for _ in range(120):
        a, b = _random_edit(rng)
        if a == b:
            continue
        d = _udiff(a, b)
        assert apply_patch({"f.txt": a}, parse_unified_diff(d)) == {"f.txt": b}
        if has_patch:
            (tmp_path / "f.txt").write_text(a)
            subprocess.run(["patch", "-p1", "--fuzz=0", "-s"], input=d, text=True, cwd=tmp_path, check=True)
            assert (tmp_path / "f.txt").read_text() == b
        checked += 1
    assert checked > 100


def test_offset_create_delete_and_no_prefix():
    text = "".join(f"{i}\n" for i in range(20))
    d = _udiff(text, text.replace("15\n", "fifteen\n"))
    moved = "x\ny\n" + text  # the hunk's context moved down by two lines: found at an offset
    assert apply_patch({"f.txt": moved}, parse_unified_diff(d))["f.txt"] == moved.replace("15\n", "fifteen\n")
    create = "--- /dev/null\n+++ b/new.py\n@@ -0,0 +1,2 @@\n+a\n+b\n"
    assert apply_patch({}, parse_unified_diff(create)) == {"new.py": "a\nb\n"}
    delete = "--- a/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n"
    assert apply_patch({"old.py": "a\n", "k": "1"}, parse_unified_diff(delete)) == {"k": "1"}
    plain = "prose before\n--- m.py\n+++ m.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\nprose after\n"
    files = {"m.py": "x = 1\n"}
    assert apply_patch(files, parse_unified_diff(plain)) == {"m.py": "x = 2\n"} and files == {"m.py": "x = 1\n"}


@pytest.mark.parametrize("path", ["../x.py", "/etc/passwd", "a/../../x.py", "pkg/../../x", ".git/config", "",
                                  "C:/x", "a\\..\\x"])
def test_paths_outside_the_repository_are_refused(path):
    with pytest.raises(PatchError):
        check_repo_path(path)
    d = f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-x\n+y\n".replace("a//", "/").replace("b//", "/")
    with pytest.raises(PatchError):
        apply_patch({"x.py": "x\n"}, parse_unified_diff(d))


def test_protected_and_missing_files():
    d = "--- a/tests/test_m.py\n+++ b/tests/test_m.py\n@@ -1 +1 @@\n-x\n+y\n"
    with pytest.raises(PatchError, match="protected"):
        apply_patch({"tests/test_m.py": "x\n"}, parse_unified_diff(d), protected=("tests/test_m.py",))
    with pytest.raises(PatchError, match="not in the repository"):
        apply_patch({}, parse_unified_diff(d))
    with pytest.raises(PatchError, match="already exists"):
        apply_patch({"n.py": ""}, parse_unified_diff("--- /dev/null\n+++ b/n.py\n@@ -0,0 +1 @@\n+a\n"))


@pytest.mark.parametrize("text, match", [
    ("", "Empty"),
    ("just some prose\n", "not a unified diff"),
    ("--- a/m.py\n@@ -1 +1 @@\n-x\n+y\n", "without a following"),
    ("@@ -1 +1 @@\n-x\n+y\n", "before any"),
    ("--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,2 @@\n-x\n+y\n", "Truncated"),
    ("--- a/m.py\n+++ b/m.py\n@@ -x +1 @@\n-x\n+y\n", "malformed hunk header"),
    ("--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,2 @@\n-x\n?y\n+z\n", "Malformed hunk line"),
    ("--- a/m.py\n+++ b/m.py\n", "no hunks"),
])
def test_malformed_diffs(text, match):
    with pytest.raises(PatchError, match=match):
        parse_unified_diff(text)


def test_context_mismatch():
    d = "--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-not there\n+y\n"
    with pytest.raises(PatchError, match="does not apply"):
        apply_patch({"m.py": "x = 1\n"}, parse_unified_diff(d))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from("abc"), max_size=12), st.lists(st.sampled_from("abc"), max_size=4),
       st.integers(-10**12, 10**12))
def test_hunk_search_matches_its_slow_twin(lines, old, at):
    assert diff._find(lines, old, at) == diff._find_reference(lines, old, at)


def test_a_huge_hunk_offset_costs_nothing_and_work_is_bounded():
    files = {"m.py": "x = 1\ny = 2\n"}
    far = parse_unified_diff("--- a/m.py\n+++ b/m.py\n@@ -999999999,1 +999999999,1 @@\n-y = 2\n+y = 3\n")
    assert apply_patch(files, far) == {"m.py": "x = 1\ny = 3\n"}  # found by searching from the clamped offset
    with pytest.raises(PatchError, match="malformed hunk header"):
        parse_unified_diff("--- a/m.py\n+++ b/m.py\n@@ -" + "9" * 5000 + " +1 @@\n-x\n")
    with pytest.raises(PatchError, match="characters long"):
        parse_unified_diff("--- a/m.py\n+++ b/m.py\n" + "@@ -1 +1 @@\n-x\n+y\n" * 20_000)
    # every line alike: each position matches all but the last line of the hunk; the search budget stops it
    big = {"m.py": "a\n" * 60_000}
    hunk = "".join(" a\n" for _ in range(999)) + "-b\n+c\n"
    with pytest.raises(PatchError, match="compared more than"):
        apply_patch(big, parse_unified_diff(f"--- a/m.py\n+++ b/m.py\n@@ -1,1000 +1,1000 @@\n{hunk}"))


def test_tests_dirs_and_conftest_are_protected():
    files = {"m.py": "x\n", "tests/h.py": "y\n"}
    protected = ("tests", "**/conftest.py")
    for d in ("--- /dev/null\n+++ b/tests/new.py\n@@ -0,0 +1 @@\n+z\n",
              "--- /dev/null\n+++ b/sub/conftest.py\n@@ -0,0 +1 @@\n+z\n",
              "--- a/tests/h.py\n+++ b/tests/h.py\n@@ -1 +1 @@\n-y\n+z\n"):
        with pytest.raises(PatchError, match="protected"):
            apply_patch(files, parse_unified_diff(d), protected=protected)
    ok = apply_patch(files, parse_unified_diff("--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-x\n+w\n"), protected=protected)
    assert ok["m.py"] == "w\n"

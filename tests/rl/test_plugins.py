"""User code from the command line: PATH.py:NAME and module:NAME without PYTHONPATH, and every misuse as one line."""

from __future__ import annotations

import pytest

from lumos.core.errors import LumosError
from lumos.rl.plugins import call_user, load_object


def test_file_and_module_specs_without_pythonpath(tmp_path, monkeypatch):
    pkg = tmp_path / "proj"
    pkg.mkdir()
    (pkg / "helpers.py").write_text("SCALE = 3\n")
    (pkg / "tasks_mod.py").write_text("from helpers import SCALE\n\ndef make(n=1):\n    return SCALE * n\n\n"
                                      "class K:\n    @staticmethod\n    def go():\n        return 'went'\n")
    # a .py path (its siblings importable), from anywhere
    assert load_object(f"{pkg / 'tasks_mod.py'}:make")(n=2) == 6
    assert load_object(f"{pkg / 'tasks_mod.py'}:K.go")() == "went"
    # a dotted module from the current directory, as `python -m` finds it
    monkeypatch.chdir(pkg)
    assert load_object("tasks_mod:make")() == 3
    assert load_object("os.path:join")("a", "b") == str(tmp_path.joinpath("a", "b").relative_to(tmp_path))


@pytest.mark.parametrize("spec,match", [
    (":factory", "names no module"),
    ("mod:", "names no attribute"),
    ("nocolon", "must be PATH.py:NAME"),
    (".relative:factory", "relative module names"),
    ("no_such_module_xyz:make", "no module named 'no_such_module_xyz'"),
    ("os.path:no_such_thing", "has no attribute 'no_such_thing'"),
    ("os:sep", "names a str, not a function"),
    ("missing_file.py:f", "file missing_file.py not found"),
    ("os.path:join-it", "is not a Python name"),
])
def test_bad_specs_are_one_line(spec, match):
    with pytest.raises(LumosError, match=match) as err:
        load_object(spec, "--task")
    assert "\n" not in str(err.value) and "--task" in str(err.value)


def test_import_errors_of_user_files(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("raise RuntimeError('boom at import')\n")
    with pytest.raises(LumosError, match="importing .*broken.py raised RuntimeError: boom at import"):
        load_object(f"{bad}:f", "--reward")
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def f(:\n")
    with pytest.raises(LumosError, match="raised SyntaxError"):
        load_object(f"{syntax}:f", "--reward")
    exits = tmp_path / "exits.py"
    exits.write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(LumosError, match="raised SystemExit"):
        load_object(f"{exits}:f", "--reward")


def test_call_user_wraps_exceptions_but_not_lumos_errors():
    with pytest.raises(LumosError, match="my factory raised KeyError"):
        call_user(lambda: {}["x"], "my factory")
    with pytest.raises(LumosError, match="^own message$"):
        call_user(lambda: (_ for _ in ()).throw(LumosError("own message")), "f")

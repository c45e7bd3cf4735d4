"""The sandbox works from a checkout and an interpreter under a ``chmod 700`` directory (issue #14).

A fresh ``git clone`` of this checkout goes under a 0700 directory, with a venv there too (no pip: a
``.pth`` file points at this interpreter's site-packages), and the tests that used to fail in such a
place run from the clone with that venv's interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()
TESTS = [
    "tests/sandbox/test_runner.py::test_repo_and_command_modes",
    "tests/rl/tasks/code/test_loader.py::test_user_repair_tasks_from_directory",
]


def _toplevel() -> Path | None:
    if shutil.which("git") is None:
        return None
    out = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--show-toplevel"], capture_output=True,
                         text=True, check=False)
    return Path(out.stdout.strip()) if out.returncode == 0 else None


@pytest.mark.isolation  # only root drops to a sandbox uid that a 0700 directory stops
def test_suite_from_a_clone_under_a_private_directory(tmp_path):
    top = _toplevel()
    if top is None:
        pytest.skip("not a git checkout")
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    clone = private / "lumos"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(top), str(clone)], check=True, timeout=120)
    venv = private / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    (purelib / "parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
    env.update(PYTHONPATH=str(clone / "src"), OMP_NUM_THREADS="1", LUMOS_PROGRESS="0")
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          "--noconftest", *TESTS],
                         cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "2 passed" in out.stdout

"""User code-repair tasks from a directory: ``task.json`` and a ``repo/`` per task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lumos.core.errors import LumosError, bad_param
from lumos.core.io import read_json

__all__ = ["HARNESSES", "load_repair_dir"]

#: ``task.json``'s ``harness`` → the sandbox mode its tests run in.
HARNESSES = {"runner": "repo", "in-process": "repo-inprocess"}

_META_LISTS = ("failing_tests", "test_files", "test_command")
_META_TEXTS = ("description", "fix", "harness")


def _task_meta(path: Path) -> dict[str, Any]:
    """``task.json``, checked: an object, ``failing_tests`` present, list keys lists of strings, text keys strings."""
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise LumosError(f"{path} must hold a JSON object with 'failing_tests'; got {type(meta).__name__}.")
    if "failing_tests" not in meta:
        raise LumosError(f"{path} needs 'failing_tests': the test ids (file.py::test_name) that fail before the fix.")
    for key in _META_LISTS:
        v = meta.get(key)
        if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            raise LumosError(f"{path}: {key!r} must be a list of strings; got {v!r:.80}.")
    for key in _META_TEXTS:
        v = meta.get(key)
        if v is not None and not isinstance(v, str):
            raise LumosError(f"{path}: {key!r} must be a string; got {v!r:.80}.")
    if meta.get("harness", "runner") not in HARNESSES:
        raise LumosError(f"{path}: 'harness' must be one of {', '.join(HARNESSES)}; got {meta['harness']!r}.")
    return meta


def load_repair_dir(root: str | Path) -> list[dict[str, Any]]:
    """User repair tasks: one sub-directory per task with ``task.json`` and a ``repo/`` directory.

    ``task.json`` keys: ``failing_tests`` (test ids ``file.py::test_name`` that fail before the fix,
    required), ``test_files`` (default: every ``test_*.py``), ``description`` (optional prompt text),
    ``test_command`` (optional argv run instead of the built-in harness; then the reward needs exit
    status 0), ``harness`` (``"runner"``, the default: the tests run in the trusted test runner and use the
    repository's modules through proxies, so the candidate cannot forge the results; ``"in-process"``: the
    tests import the repository in one interpreter, for tests that need real objects, and the results are
    forgeable), ``fix`` (optional reference diff, used for demonstrations). Text files only, ≤ 256 KiB each.
    """
    root = Path(root)
    if not root.is_dir():
        raise bad_param("root", "a directory of repair tasks", str(root), owner="load_repair_dir")
    repos = []
    for task_dir in sorted(p for p in root.iterdir() if (p / "task.json").is_file()):
        meta = _task_meta(task_dir / "task.json")
        repo = task_dir / "repo"
        if not repo.is_dir():
            raise LumosError(f"Repair task {task_dir} needs a repo/ directory next to its task.json.")
        files = {}
        for path in sorted(p for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts):
            if path.stat().st_size > 256 * 1024:
                raise LumosError(f"{path} is larger than 256 KiB; repair tasks hold small text repositories.")
            try:
                files[path.relative_to(repo).as_posix()] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise LumosError(f"{path} is not UTF-8 text; repair tasks hold text files only.") from None
        test_files = meta.get("test_files") or [f for f in files if Path(f).name.startswith("test_")]
        repos.append({"name": task_dir.name, "files": files, "test_files": test_files,
                      "failing": meta["failing_tests"], "description": meta.get("description", ""),
                      "command": meta.get("test_command"), "fix": meta.get("fix"),
                      "harness": meta.get("harness", "runner")})
    if not repos:
        raise LumosError(f"No repair tasks (sub-directories with task.json) found in {root}.")
    return repos

"""User code-repair tasks from a directory: ``task.json`` and a ``repo/`` per task, read as untrusted input.

A task directory may come from anyone, and the trainer often runs as root. So it is read through file
descriptors, one directory at a time, never following a symbolic link (``O_NOFOLLOW`` at every step; a link
is an error naming it), never reading a special file or a file with other hard links (which could be a file
outside the task), within size bounds, and -- when this process is root and the task directory belongs to
another user -- in a forked child that first drops to that user's uid and gids, so a file its owner could not
read is not read for them either.
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lumos.core.errors import LumosError, bad_param

__all__ = ["HARNESSES", "DEFAULT_HARNESS", "MAX_FILE_BYTES", "MAX_FILES", "load_repair_dir", "support_files", "dirs_of_tests"]

#: ``task.json``'s ``harness`` → the sandbox mode its tests run in.
HARNESSES = {"runner": "repo", "in-process": "repo-inprocess"}
#: the harness of a task that names none: its tests run in the trusted test runner
DEFAULT_HARNESS = "runner"
#: Largest file of a task's repository, most files of one task.
MAX_FILE_BYTES = 256 * 1024
MAX_FILES = 2000
_MAX_DEPTH = 32
_TESTS_DIRS = ("tests", "test", "testing")
_META_LISTS = ("failing_tests", "test_files", "test_command", "test_support")
_META_TEXTS = ("description", "fix", "harness")
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def dirs_of_tests(test_files: list[str], declared: Sequence[str] = ()) -> list[str]:
    """The tests' directories: each test file's first ancestor named ``tests``, ``test`` or ``testing``, and the
    files or directories ``task.json`` names in ``test_support``."""
    roots = {d.rstrip("/") for d in declared}
    for t in test_files:
        parts = t.split("/")[:-1]
        for i, part in enumerate(parts):
            if part in _TESTS_DIRS:
                roots.add("/".join(parts[:i + 1]))
                break
    return sorted(roots)


def support_files(files: dict[str, Any], test_files: list[str], declared: Sequence[str] = ()) -> list[str]:
    """The tests' own files besides the test files, protected like them: every file of a tests directory (see
    :func:`dirs_of_tests`, and all below it), every ``conftest.py``, and what ``test_support`` names."""
    roots = dirs_of_tests(test_files, declared)
    return sorted(f for f in files if f not in test_files and (
        posixpath.basename(f) == "conftest.py" or f in roots or any(f.startswith(r + "/") for r in roots)))


def _task_meta(text: str, path: str) -> dict[str, Any]:
    """``task.json``, checked: an object, ``failing_tests`` present, list keys lists of strings, text keys strings."""
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise LumosError(f"{path} is not valid JSON ({type(exc).__name__}: {exc}). Re-create or fix the file.") from None
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
    if meta.get("harness", DEFAULT_HARNESS) not in HARNESSES:
        raise LumosError(f"{path}: 'harness' must be one of {', '.join(HARNESSES)}; got {meta['harness']!r}.")
    return meta


class _TaskReadError(Exception):
    """A task file that may not be read; the message names it."""


def _read_file(dir_fd: int, name: str, shown: str) -> str:
    try:
        fd = os.open(name, _FILE, dir_fd=dir_fd)
    except OSError as exc:
        raise _TaskReadError(f"{shown} cannot be read ({exc.strerror}).") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _TaskReadError(f"{shown} is not a regular file; repair tasks hold text files only.")
        if st.st_nlink > 1:
            raise _TaskReadError(f"{shown} has other hard links (it may be a file outside the task); copy it.")
        if st.st_size > MAX_FILE_BYTES:
            raise _TaskReadError(f"{shown} is larger than {MAX_FILE_BYTES // 1024} KiB; repair tasks hold small "
                                 "text repositories.")
        data = os.read(fd, MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    try:
        return data[:MAX_FILE_BYTES].decode("utf-8")
    except UnicodeDecodeError:
        raise _TaskReadError(f"{shown} is not UTF-8 text; repair tasks hold text files only.") from None


def _open_dir(dir_fd: int, name: str, shown: str) -> int:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise _TaskReadError(f"{shown} is missing.") from None
    if stat.S_ISLNK(st.st_mode):
        raise _TaskReadError(f"{shown} is a symbolic link; task directories are read without following links "
                             "(put the directory itself there).")
    try:
        return os.open(name, _DIR, dir_fd=dir_fd)
    except OSError as exc:
        raise _TaskReadError(f"{shown} cannot be opened as a directory ({exc.strerror}).") from None


def _utf8_name(name: str, shown: str) -> None:
    """A name that goes into prompts and error lines must be text (``os.listdir`` escapes other bytes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise _TaskReadError(f"{shown}/{ascii(name)} is not a UTF-8 name; rename it.") from None


def _walk(dir_fd: int, rel: str, shown: str, files: dict[str, str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise _TaskReadError(f"{shown}/{rel} is nested deeper than {_MAX_DEPTH} directories.")
    for name in sorted(os.listdir(dir_fd)):
        path = f"{rel}{name}"
        if name == ".git":
            continue
        _utf8_name(path, shown)
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise _TaskReadError(f"{shown}/{path} is a symbolic link; task files are read without following "
                                 "links (replace it with the file itself).")
        if stat.S_ISDIR(st.st_mode):
            sub = _open_dir(dir_fd, name, f"{shown}/{path}")
            try:
                _walk(sub, path + "/", shown, files, depth + 1)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            if len(files) >= MAX_FILES:
                raise _TaskReadError(f"{shown} holds more than {MAX_FILES} files; repair tasks are small.")
            files[path] = _read_file(dir_fd, name, f"{shown}/{path}")
        else:
            raise _TaskReadError(f"{shown}/{path} is not a regular file or directory; repair tasks hold text "
                                 "files only.")


def _read_task(task_fd: int, shown: str) -> dict[str, Any]:
    """``{"meta": text, "files": {rel: text}}`` of the task directory open as ``task_fd``, or ``{"error": message}``."""
    try:
        meta = _read_file(task_fd, "task.json", f"{shown}/task.json")
        try:
            repo_fd = _open_dir(task_fd, "repo", f"{shown}/repo")
        except _TaskReadError as exc:
            if "is missing" in str(exc):
                raise _TaskReadError(f"Repair task {shown} needs a repo/ directory next to its task.json.") from None
            raise
        files: dict[str, str] = {}
        try:
            _walk(repo_fd, "", f"{shown}/repo", files, 0)
        finally:
            os.close(repo_fd)
    except _TaskReadError as exc:
        return {"error": str(exc)}
    except OSError as exc:
        return {"error": f"{shown} cannot be read ({exc.strerror or exc})."}
    return {"meta": meta, "files": files}


def _read_as(uid: int, gid: int, task_fd: int, shown: str) -> dict[str, Any]:
    """:func:`_read_task` in a forked child that first drops to ``uid``/``gid`` (no supplementary groups)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no imports, no threads; plain system calls, then exit
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            out = json.dumps(_read_task(task_fd, shown)).encode()
        except BaseException as exc:  # noqa: BLE001 - whatever happened, say it and leave
            out = json.dumps({"error": f"{shown}: reading as uid {uid} failed ({type(exc).__name__})."}).encode()
        try:
            while out:
                out = out[os.write(w, out):]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    try:
        while chunk := os.read(r, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    try:
        out = json.loads(b"".join(chunks))
    except ValueError:
        out = None
    return out if isinstance(out, dict) else {"error": f"{shown}: the reader exited without an answer."}


def _task_entries(root_fd: int) -> list[str]:
    """Names in the root that are task directories (they hold a task.json) or links (reported as errors)."""
    out = []
    for name in sorted(os.listdir(root_fd)):
        st = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            out.append(name)
        elif stat.S_ISDIR(st.st_mode):
            try:
                fd = os.open(name, _DIR, dir_fd=root_fd)
            except OSError:
                continue
            try:
                os.stat("task.json", dir_fd=fd, follow_symlinks=False)
                out.append(name)
            except OSError:
                pass
            finally:
                os.close(fd)
    return out


def _entries_checked(root_fd: int, root: Path) -> list[str]:
    names = _task_entries(root_fd)
    for name in names:
        try:
            _utf8_name(name, str(root))
        except _TaskReadError as exc:
            raise LumosError(str(exc)) from None
    return names


def load_repair_dir(root: str | Path) -> list[dict[str, Any]]:
    """User repair tasks: one sub-directory per task with ``task.json`` and a ``repo/`` directory.

    ``task.json`` keys: ``failing_tests`` (test ids ``file.py::test_name`` that fail before the fix,
    required), ``test_files`` (default: every ``test_*.py``), ``test_support`` (files or directories of the
    tests' own: helpers outside a ``tests/`` directory, data; see :func:`support_files`), ``description``
    (optional prompt text), ``test_command`` (optional argv run instead of the built-in harness; then the
    reward needs exit status 0), ``harness`` (``"runner"``, the default: the tests run in the trusted test
    runner and use the repository's modules through proxies, so the candidate cannot forge the results;
    ``"in-process"``: the tests import the repository in one interpreter, for tests that need real objects,
    and the results are forgeable), ``fix`` (optional reference diff, used for demonstrations). Text files
    only, ≤ 256 KiB each; no symbolic links, special files or files with other hard links (an error names
    the first one). Read as the task directory's owner when this process is root (see the module docstring).
    """
    root = Path(root)
    if not root.is_dir():
        raise bad_param("root", "a directory of repair tasks", str(root), owner="load_repair_dir")
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:  # unreadable (permissions) or gone since is_dir: one line, not a traceback
        raise LumosError(f"Task directory {root} cannot be read ({exc.strerror}).") from None
    try:
        repos = [_load_task(root_fd, name, str(root / name)) for name in _entries_checked(root_fd, root)]
    except OSError as exc:  # an entry unreadable or removed while scanning
        raise LumosError(f"Task directory {root} cannot be read: {exc.filename or root}: {exc.strerror}.") from None
    finally:
        os.close(root_fd)
    if not repos:
        raise LumosError(f"No repair tasks (sub-directories with task.json) found in {root}.")
    return repos


def _load_task(root_fd: int, name: str, shown: str) -> dict[str, Any]:
    try:
        task_fd = _open_dir(root_fd, name, shown)
    except _TaskReadError as exc:
        raise LumosError(str(exc)) from None
    try:
        st = os.fstat(task_fd)
        if os.geteuid() == 0 and st.st_uid != 0:
            got = _read_as(st.st_uid, st.st_gid, task_fd, shown)
        else:
            got = _read_task(task_fd, shown)
    finally:
        os.close(task_fd)
    if "error" in got or not isinstance(got.get("files"), dict) or not isinstance(got.get("meta"), str):
        raise LumosError(str(got.get("error", f"{shown} could not be read."))[:500])
    meta, files = _task_meta(got["meta"], f"{shown}/task.json"), got["files"]
    test_files = meta.get("test_files") or [f for f in files if posixpath.basename(f).startswith("test_")]
    missing = [t for t in test_files if t not in files]
    if missing:
        raise LumosError(f"{shown}/task.json: test_files {missing} are not in its repo/ directory.")
    return {"name": name, "files": files, "test_files": test_files,
            "test_support": meta.get("test_support") or [],
            "failing": meta["failing_tests"], "description": meta.get("description", ""),
            "command": meta.get("test_command"), "fix": meta.get("fix"), "harness": meta.get("harness", DEFAULT_HARNESS)}

"""Host-side cleanup that never raises: an iterative, fd-relative ``rmtree`` and the sweep of leftovers.

:func:`rmtree` walks down one directory at a time through file descriptors (``openat``/``unlinkat``), so
a tree 1,100 levels deep or with paths longer than ``PATH_MAX`` is removed without recursion, and a
directory the sandbox made unreadable is first given back its permissions. :func:`sweep_leftovers` removes
the working and control directories (``lumos-sbx-<pid>-…``) and cgroup leaves of host processes that died
before they could clean up (SIGKILL, power loss); it runs once per process, at the first job.
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from pathlib import Path

from lumos.sandbox import cgroup
from lumos.sandbox._shared import CONTROL_PREFIX, PREFIX

__all__ = ["rmtree", "sweep_leftovers", "alive", "PREFIX", "CONTROL_PREFIX"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_swept = threading.Lock()
_done = False


def _open_dir(name: str, dir_fd: int | None) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        os.chmod(name, 0o700, dir_fd=dir_fd, follow_symlinks=False)
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _unlink_files_until_subdir(fd: int, stuck: set[tuple[int, int]]) -> str | None:
    """Unlink the entries that are not directories in the directory open on ``fd`` until a subdirectory not in
    ``stuck`` turns up; return its name (None: no such subdirectory is left). An entry that vanished meanwhile, or
    that cannot be removed, is skipped."""
    with os.scandir(fd) as it:
        for entry in it:
            try:
                if not entry.is_dir(follow_symlinks=False):
                    os.unlink(entry.name, dir_fd=fd)
                    continue
                st = entry.stat(follow_symlinks=False)
                if (st.st_dev, st.st_ino) not in stuck:
                    return entry.name
            except OSError:  # FileNotFoundError included
                continue
    return None


def rmtree(path: str | os.PathLike) -> bool:
    """Remove ``path`` and everything below it; True when it is gone. Never raises."""
    path = os.fspath(path)
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)
            return True
        fd = _open_dir(path, None)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    names: list[str] = []  # the path from ``path`` down to the directory ``fd`` is open on
    stuck: set[tuple[int, int]] = set()
    try:
        while True:
            sub = _unlink_files_until_subdir(fd, stuck)
            if sub is not None:
                try:
                    child = _open_dir(sub, fd)
                except OSError:
                    st = os.stat(sub, dir_fd=fd, follow_symlinks=False)
                    stuck.add((st.st_dev, st.st_ino))
                    continue
                os.close(fd)
                fd = child
                names.append(sub)
                continue
            if not names:
                os.close(fd)
                fd = -1
                try:
                    os.rmdir(path)
                except FileNotFoundError:
                    pass
                return not os.path.lexists(path)
            parent = os.open("..", _DIR_FLAGS & ~os.O_NOFOLLOW, dir_fd=fd)
            me = os.fstat(fd)
            os.close(fd)
            fd = parent
            name = names.pop()
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                stuck.add((me.st_dev, me.st_ino))
    except OSError:
        return False
    finally:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_pid(name: str, prefix: str) -> int | None:
    head = name[len(prefix):].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def sweep_leftovers(dirs: list[str | os.PathLike] | None = None, force: bool = False) -> int:
    """Remove sandbox directories and cgroup leaves left by dead host processes; returns how many.

    Runs once per process unless ``force``. ``dirs``: where to look (default: the system temp directory)."""
    global _done
    with _swept:
        if _done and not force:
            return 0
        _done = True
    n = 0
    for base in dirs or [tempfile.gettempdir()]:
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            for prefix in (CONTROL_PREFIX, PREFIX):
                if name.startswith(prefix):
                    pid = _owner_pid(name, prefix)
                    if pid is not None and pid != os.getpid() and not alive(pid):
                        n += rmtree(Path(base) / name)
                    break
    try:
        n += cgroup.sweep(alive)
    except OSError:
        pass
    return n

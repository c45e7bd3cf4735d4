"""Per-sandbox memory, process and CPU caps through a cgroup leaf (v2 when the host delegates it, else v1).

The host creates one leaf per job (``lumos-<host pid>-<random>``) next to its own cgroup, writes the caps,
and the launcher moves itself in before it starts anything, so every process of the sandbox, its tmpfs
pages and its shared memory count against one budget. After the job the host reads the peak and the OOM
count (kernel counters the sandbox cannot write) and removes the leaf; leaves of dead hosts are removed by
:func:`sweep`. Where no cgroup can be created (not root, no writable hierarchy) :func:`create` returns
``None``, :func:`note` says why, and the verdict's ``isolation["cgroup"]`` says ``none``: then only the
per-process rlimits apply.

cgroup v2 (:func:`v2_parent`, decided once per process): leaves go under this process's own cgroup, which
must delegate ``memory`` and ``pids`` (and ``cpu`` when present) in its ``cgroup.subtree_control``. The
kernel refuses that while the cgroup itself holds processes (the "no internal processes" rule); when this
process is alone there it first moves into a child ``lumos-<pid>-host`` of its own, as nsjail does, and
otherwise cgroup v2 is not used (the note names the cgroup). On a hybrid host whose v2 hierarchy has no
memory controller (it is bound to v1), v1 is used.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
from dataclasses import dataclass, field

__all__ = ["Leaf", "make", "configure", "create", "note", "read_stats", "release", "remove", "sweep", "v2_parent"]

_ROOT = "/sys/fs/cgroup"
_PROC_SELF_CGROUP = "/proc/self/cgroup"
_NEED = ("memory", "pids")


@dataclass
class Leaf:
    """One job's cgroup: ``dirs`` are its directories (one per v1 controller, or one in v2)."""

    version: str
    dirs: list[str] = field(default_factory=list)
    cpu: bool = False  #: whether the CPU bandwidth cap is in force
    limits: tuple[int, int, float] | None = None  #: (memory bytes, pids, cores) last written by :func:`configure`

    @property
    def procs(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self.dirs]


def _own_paths() -> dict[str, str]:
    """Controller (or ``""`` for v2) → this process's cgroup path."""
    out = {}
    try:
        with open(_PROC_SELF_CGROUP) as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                for c in ctrls.split(",") if ctrls else [""]:
                    out[c] = path
    except (OSError, ValueError):
        pass
    return out


def _v2_base() -> str | None:
    for base in (_ROOT, os.path.join(_ROOT, "unified")):
        if os.path.exists(os.path.join(base, "cgroup.controllers")):
            return base
    return None


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


_PERIOD_US = 100_000


def _is_root() -> bool:
    return os.geteuid() == 0


def _mkdir(path: str) -> None:
    os.mkdir(path)  # the kernel fills a new cgroup directory with its interface files


_os_rmdir = os.rmdir  # (the tests' simulated cgroup filesystems replace _mkdir, _os_rmdir and _write)


_v2: dict[str, str | None] = {}  # "parent" and "note", decided once per process by v2_parent()
_v2_lock = threading.Lock()
_note = [""]  # why the last make() found no leaf


def note() -> str:
    """Why :func:`create` returned None (the last time it did), or ``""``."""
    return _note[0]


def _delegate(here: str, ctrls: list[str]) -> bool:
    """Enable memory and pids (and cpu, best effort) for the children of ``here``; False when refused."""
    on = set(_read(os.path.join(here, "cgroup.subtree_control")).split())
    need = [c for c in _NEED if c not in on]
    try:
        if need:
            _write(os.path.join(here, "cgroup.subtree_control"), " ".join("+" + c for c in need))
    except OSError:
        return False
    if "cpu" in ctrls and "cpu" not in on:
        try:
            _write(os.path.join(here, "cgroup.subtree_control"), "+cpu")
        except OSError:
            pass  # CPU bandwidth is optional; the leaf then reports cpu=False
    return True


def _find_v2_parent() -> tuple[str | None, str]:
    base, own = _v2_base(), _own_paths().get("")
    if base is None or own is None:
        return None, "no cgroup v2 hierarchy"
    here = base + own.rstrip("/")
    ctrls = _read(os.path.join(here, "cgroup.controllers")).split()
    if not all(c in ctrls for c in _NEED):
        return None, f"cgroup v2: the memory and pids controllers are not available in {here}"
    if _delegate(here, ctrls):
        return here, ""
    # the "no internal processes" rule: alone in ``here``, move into a child of our own and delegate again
    if _read(os.path.join(here, "cgroup.procs")).split() != [str(os.getpid())]:
        return None, (f"cgroup v2: cannot enable memory and pids in {here}/cgroup.subtree_control while other "
                      f"processes are in that cgroup; start the host alone in a cgroup of its own")
    child = os.path.join(here, f"lumos-{os.getpid()}-host")
    try:
        if not os.path.isdir(child):
            _mkdir(child)
        _write(os.path.join(child, "cgroup.procs"), str(os.getpid()))
    except OSError as exc:
        return None, f"cgroup v2: could not move this process into {child}: {exc}"
    if _delegate(here, ctrls):
        return here, ""
    return None, f"cgroup v2: the kernel refused to delegate memory and pids in {here}"


def v2_parent() -> str | None:
    """The cgroup v2 directory that holds this process's leaves, or None (see the module docstring)."""
    with _v2_lock:
        if "parent" not in _v2:
            _v2["parent"], _v2["note"] = _find_v2_parent()
        return _v2["parent"]


def _try_v2(name: str) -> Leaf | None:
    parent = v2_parent()
    if parent is None:
        return None
    leaf = os.path.join(parent, name)
    _mkdir(leaf)
    ctrls = _read(os.path.join(leaf, "cgroup.controllers")).split()
    if not all(c in ctrls for c in _NEED):
        _rmdir(leaf)
        raise OSError(f"cgroup v2: {leaf} lacks the memory/pids controllers")
    return Leaf("v2", [leaf], cpu="cpu" in ctrls)


def _try_v1(name: str) -> Leaf | None:
    own = _own_paths()
    made: list[str] = []
    try:
        for ctrl in ("memory", "pids", "cpu"):
            if ctrl not in own or not os.path.isdir(os.path.join(_ROOT, ctrl)):
                if ctrl == "cpu":
                    break  # optional: memory and processes are the caps that matter
                raise OSError(f"no v1 {ctrl} hierarchy")
            leaf = os.path.join(_ROOT, ctrl) + own[ctrl].rstrip("/") + "/" + name
            _mkdir(leaf)
            made.append(leaf)
        if len(made) == 3:
            _write(os.path.join(made[2], "cpu.cfs_period_us"), str(_PERIOD_US))
        return Leaf("v1", made, cpu=len(made) == 3)
    except OSError:
        for d in made:
            _rmdir(d)
        return None


def configure(leaf: Leaf, memory_bytes: int, max_pids: int, cpus: float = 1.0) -> bool:
    """Write the caps into ``leaf`` (again: a leaf made ahead of time gets its job's caps); False on failure.

    Memory counts RAM, swap (v2: ``memory.swap.max`` 0; v1: the memory+swap limit equals the memory limit),
    tmpfs pages and shared memory; CPU is ``cpus`` cores of bandwidth per 100 ms period when ``leaf.cpu``."""
    want = (int(memory_bytes), int(max_pids), float(cpus))
    if leaf.limits == want:
        return True
    mem, pids = str(want[0]), str(want[1])
    quota = f"{int(cpus * _PERIOD_US)}"
    try:
        if leaf.version == "v2":
            d = leaf.dirs[0]
            _write(os.path.join(d, "memory.max"), mem)
            if os.path.exists(os.path.join(d, "memory.swap.max")):
                _write(os.path.join(d, "memory.swap.max"), "0")
            _write(os.path.join(d, "pids.max"), pids)
            if leaf.cpu:
                _write(os.path.join(d, "cpu.max"), f"{quota} {_PERIOD_US}")
        else:
            mdir, pdir = leaf.dirs[:2]
            # v1 keeps memory.limit <= memsw.limit at every step: raise memsw first when growing
            order = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
            if leaf.limits is not None and want[0] > leaf.limits[0]:
                order.reverse()
            for fname in order:
                if fname == "memory.limit_in_bytes" or os.path.exists(os.path.join(mdir, fname)):
                    _write(os.path.join(mdir, fname), mem)
            _write(os.path.join(pdir, "pids.max"), pids)
            if leaf.cpu:
                _write(os.path.join(leaf.dirs[2], "cpu.cfs_quota_us"), quota)
    except OSError:
        leaf.limits = None
        return False
    leaf.limits = want
    return True


_pending: list[Leaf] = []  # leaves whose last processes were still exiting; retried later
_pending_lock = threading.Lock()


def make(name: str) -> Leaf | None:
    """An empty leaf named ``name`` next to this process's cgroup (v2 when delegated, else v1); no caps yet."""
    if not _is_root():
        _note[0] = "cgroups need root"
        return None
    _retry_pending()
    try:
        leaf = _try_v2(name) or _try_v1(name)
    except OSError as exc:
        leaf, _note[0] = None, str(exc)
    else:
        if leaf is None:
            _note[0] = f"{_v2.get('note') or 'no cgroup v2'}; no writable cgroup v1 memory and pids hierarchy"
    return leaf


def create(name: str, memory_bytes: int, max_pids: int, cpus: float = 1.0) -> Leaf | None:
    """A leaf capping memory (RAM + swap + tmpfs + shared memory), processes and CPU (``cpus`` cores, when
    the cpu controller is there); None when impossible."""
    leaf = make(name)
    if leaf is not None and not configure(leaf, memory_bytes, max_pids, cpus):
        remove(leaf, wait=0.0)
        return None
    return leaf


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _field(text: str, key: str) -> int:
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return 0


def read_stats(leaf: Leaf) -> dict[str, int]:
    """``{"peak_kb", "oom_kills", "limit_hits", "cpu_throttled"}`` from the kernel's counters
    (``cpu_throttled``: CFS periods in which the CPU bandwidth cap stopped the sandbox; 0 without the cap)."""
    d = leaf.dirs[0]
    cpu_dir = (d if leaf.version == "v2" else leaf.dirs[2]) if leaf.cpu else None
    throttled = _field(_read(os.path.join(cpu_dir, "cpu.stat")), "nr_throttled") if cpu_dir else 0
    if leaf.version == "v2":
        peak = _read(os.path.join(d, "memory.peak")).strip()
        events = _read(os.path.join(d, "memory.events"))
        return {"peak_kb": int(peak) // 1024 if peak.isdigit() else 0, "oom_kills": _field(events, "oom_kill"),
                "limit_hits": _field(events, "max"), "cpu_throttled": throttled}
    peak = _read(os.path.join(d, "memory.max_usage_in_bytes")).strip()
    fail = _read(os.path.join(d, "memory.failcnt")).strip()
    return {"peak_kb": int(peak) // 1024 if peak.isdigit() else 0,
            "oom_kills": _field(_read(os.path.join(d, "memory.oom_control")), "oom_kill"),
            "limit_hits": int(fail) if fail.isdigit() else 0, "cpu_throttled": throttled}


def _rmdir(path: str) -> bool:
    try:
        _os_rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _kill_members(d: str) -> None:
    if os.path.exists(os.path.join(d, "cgroup.kill")):  # v2 (Linux 5.14+): every member at once
        try:
            _write(os.path.join(d, "cgroup.kill"), "1")
            return
        except OSError:
            pass
    for pid in _read(os.path.join(d, "cgroup.procs")).split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ValueError, OSError):
            pass


def remove(leaf: Leaf, wait: float = 2.0) -> bool:
    """Kill what is left in the leaf and remove it; never raises. False when it is still busy (what was
    left is killed even then: a launcher still exiting, or a standby whose job never came)."""
    end = time.monotonic() + wait
    pending = list(leaf.dirs)
    while pending:
        pending = [d for d in pending if not _rmdir(d)]
        if not pending:
            break
        for d in pending:
            _kill_members(d)
        if time.monotonic() >= end:
            break
        time.sleep(0.01)
    return not pending


def release(leaf: Leaf) -> None:
    """Remove ``leaf`` now if it is empty, else later (next :func:`create`, or at exit): never waits."""
    if not remove(leaf, wait=0.0):
        with _pending_lock:
            _pending.append(leaf)


def _retry_pending(wait: float = 0.0) -> None:
    with _pending_lock:
        todo = list(_pending)
        _pending.clear()
    for leaf in todo:
        if not remove(leaf, wait=wait):
            with _pending_lock:
                _pending.append(leaf)


atexit.register(_retry_pending, 2.0)


def sweep(alive) -> int:  # noqa: ANN001 - alive: host pid -> bool
    """Remove the leaves ``lumos-<pid>-*`` of hosts that are no longer alive; returns how many."""
    if not _is_root():
        return 0
    own, n = _own_paths(), 0
    parents = []
    v2 = _v2_base()
    if v2 and "" in own:
        here = v2 + own[""].rstrip("/")
        host = os.path.basename(here).split("-")
        if len(host) == 3 and host[0] == "lumos" and host[2] == "host":  # we moved into our own child
            here = os.path.dirname(here)
        parents.append(here)
    parents += [os.path.join(_ROOT, c) + own[c].rstrip("/") for c in ("memory", "pids", "cpu") if c in own]
    for parent in parents:
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            parts = name.split("-")
            if len(parts) == 3 and parts[0] == "lumos" and parts[1].isdigit() and not alive(int(parts[1])):
                if parts[2] == "host":  # a dead host's own cgroup: removed when empty, nothing in it killed
                    n += _rmdir(os.path.join(parent, name))
                else:
                    n += remove(Leaf("v1", [os.path.join(parent, name)]), wait=0.5)
    return n

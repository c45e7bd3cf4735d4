"""cgroup leaves against simulated cgroup filesystems (the v2 path cannot be reached on a v1 or hybrid host).

:class:`FakeKernel` stands in for the kernel's side of a cgroup hierarchy in a temporary directory: a new
cgroup directory gets its interface files (``cgroup.controllers`` = what the parent delegates), writes to
``cgroup.subtree_control`` add or remove controllers and are refused while the cgroup holds processes (v2's
"no internal processes" rule), writes to ``cgroup.procs`` move a process, ``cgroup.kill`` empties a cgroup,
and ``rmdir`` fails while a cgroup has members. Every write is recorded, so the tests check exactly what
:mod:`lumos.sandbox.cgroup` writes.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from lumos.sandbox import cgroup
from lumos.sandbox.netns import Isolation, isolation_summary

PID = os.getpid()
OWN = "/user.slice/trainer.scope"


class FakeKernel:
    def __init__(self, root: Path):
        self.root = root
        self.writes: list[tuple[str, str]] = []

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    def read(self, path: str | Path) -> str:
        return Path(path).read_text() if Path(path).exists() else ""

    def procs(self, d: str | Path) -> list[str]:
        return self.read(Path(d) / "cgroup.procs").split()

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        parent = Path(path).parent
        files = {"cgroup.procs": "", "cgroup.subtree_control": "",
                 "cgroup.controllers": self.read(parent / "cgroup.subtree_control")}
        if self.v2:
            files.update({"cgroup.kill": "", "memory.max": "max", "memory.swap.max": "max", "pids.max": "max",
                          "cpu.max": "max 100000", "memory.peak": "0", "memory.events": "oom_kill 0\n"})
        for name, text in files.items():
            (Path(path) / name).write_text(text)

    def write(self, path: str, value: str) -> None:
        p = Path(path)
        self.writes.append((self.rel(path), value))
        if p.name == "cgroup.subtree_control":
            have = set(p.read_text().split())
            offered = set(self.read(p.parent / "cgroup.controllers").split())
            for tok in value.split():
                if tok[1:] not in offered:
                    raise OSError(errno.ENOENT, f"{tok} not available")
            if self.procs(p.parent) and p.parent != self.root:
                raise OSError(errno.EBUSY, "no internal processes")
            for tok in value.split():
                (have.add if tok[0] == "+" else have.discard)(tok[1:])
            p.write_text(" ".join(sorted(have)))
        elif p.name == "cgroup.procs":
            for d in self.root.rglob("cgroup.procs"):  # a process is in exactly one cgroup
                d.write_text(" ".join(x for x in d.read_text().split() if x != value))
            p.write_text(" ".join(self.procs(p.parent) + [value]))
        elif p.name == "cgroup.kill":
            (p.parent / "cgroup.procs").write_text("")
        else:
            p.write_text(value)

    def rmdir(self, path: str) -> None:
        if self.procs(path) or any(c.is_dir() for c in Path(path).iterdir()):
            raise OSError(errno.EBUSY, "cgroup busy")
        shutil.rmtree(path)

    v2 = True


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    root = tmp_path / "cgroup"
    here = root / OWN.lstrip("/")
    here.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids")
    (root / "cgroup.subtree_control").write_text("cpu memory pids")
    (root / "user.slice" / "cgroup.controllers").write_text("cpu memory pids")
    (root / "user.slice" / "cgroup.subtree_control").write_text("cpu memory pids")
    (here / "cgroup.controllers").write_text("cpu memory pids")
    (here / "cgroup.subtree_control").write_text("")
    (here / "cgroup.procs").write_text(str(PID))
    self_cgroup = tmp_path / "self-cgroup"
    self_cgroup.write_text(f"0::{OWN}\n")
    k = FakeKernel(root)
    monkeypatch.setattr(cgroup, "_ROOT", str(root))
    monkeypatch.setattr(cgroup, "_PROC_SELF_CGROUP", str(self_cgroup))
    monkeypatch.setattr(cgroup, "_is_root", lambda: True)
    monkeypatch.setattr(cgroup, "_v2", {})
    monkeypatch.setattr(cgroup, "_pending", [])
    monkeypatch.setattr(cgroup, "_mkdir", k.mkdir)
    monkeypatch.setattr(cgroup, "_write", k.write)
    monkeypatch.setattr(cgroup, "_os_rmdir", k.rmdir)
    k.here, k.self_cgroup = here, self_cgroup
    return k


def test_v2_moves_a_lone_host_into_a_child_then_delegates_and_caps(kernel):
    leaf = cgroup.create("lumos-1-abc", 300 << 20, 24, 0.5)
    assert leaf is not None and leaf.version == "v2" and leaf.cpu
    own, d = kernel.rel(kernel.here), kernel.rel(leaf.dirs[0])
    assert d == f"{own}/lumos-1-abc" and leaf.procs == [leaf.dirs[0] + "/cgroup.procs"]
    assert kernel.writes == [
        (f"{own}/cgroup.subtree_control", "+memory +pids"),  # refused: this process is in that cgroup
        (f"{own}/lumos-{PID}-host/cgroup.procs", str(PID)),  # so it moves into a child of its own
        (f"{own}/cgroup.subtree_control", "+memory +pids"),
        (f"{own}/cgroup.subtree_control", "+cpu"),
        (f"{d}/memory.max", str(300 << 20)),
        (f"{d}/memory.swap.max", "0"),
        (f"{d}/pids.max", "24"),
        (f"{d}/cpu.max", "50000 100000"),
    ]
    assert kernel.procs(kernel.here) == [] and kernel.procs(kernel.here / f"lumos-{PID}-host") == [str(PID)]
    # the decision is made once: a second leaf only writes its own caps
    n = len(kernel.writes)
    second = cgroup.create("lumos-1-def", 300 << 20, 24, 0.5)
    assert [w[0].rsplit("/", 1)[1] for w in kernel.writes[n:]] == ["memory.max", "memory.swap.max", "pids.max",
                                                                    "cpu.max"]
    # a standby's leaf gets its job's caps: only when they differ
    n = len(kernel.writes)
    assert cgroup.configure(second, 300 << 20, 24, 0.5) and len(kernel.writes) == n
    assert cgroup.configure(second, 100 << 20, 10, 2.0)
    assert kernel.writes[n:] == [(f"{own}/lumos-1-def/memory.max", str(100 << 20)),
                                 (f"{own}/lumos-1-def/memory.swap.max", "0"),
                                 (f"{own}/lumos-1-def/pids.max", "10"),
                                 (f"{own}/lumos-1-def/cpu.max", "200000 100000")]


def test_v2_already_delegated_parent_needs_no_move(kernel):
    (kernel.here / "cgroup.procs").write_text("")  # e.g. the host was started in a child already
    (kernel.here / "cgroup.subtree_control").write_text("memory pids")
    leaf = cgroup.create("lumos-1-abc", 1 << 30, 8)
    assert leaf is not None and leaf.version == "v2"
    own = kernel.rel(kernel.here)
    assert kernel.writes[0] == (f"{own}/cgroup.subtree_control", "+cpu")
    assert not (kernel.here / f"lumos-{PID}-host").exists()


def test_v2_refused_when_other_processes_share_the_cgroup(kernel):
    (kernel.here / "cgroup.procs").write_text(f"1 {PID}")
    assert cgroup.create("lumos-1-abc", 1 << 30, 8) is None
    assert "other processes" in cgroup.note() and str(kernel.here) in cgroup.note()
    iso = Isolation(True, True, True, True, cgroup="none", cgroup_note=cgroup.note())
    assert any(line.startswith("memory: per-process rlimits only") and str(kernel.here) in line
               for line in isolation_summary(iso))
    assert [p.name for p in kernel.here.iterdir() if p.is_dir()] == []  # nothing made, nothing moved
    assert kernel.procs(kernel.here) == ["1", str(PID)]


def test_hybrid_host_without_v2_memory_uses_nothing_of_v2(kernel, monkeypatch):
    """A v2 hierarchy whose memory controller is bound to v1 (this machine's ``unified``): no leaf is made
    there (no mkdir/rmdir per job), and the note says why."""
    (kernel.here / "cgroup.controllers").write_text("hugetlb")
    assert cgroup.create("lumos-1-abc", 1 << 30, 8) is None
    assert kernel.writes == [] and [p for p in kernel.here.iterdir() if p.is_dir()] == []
    assert "not available" in cgroup.note() and "v1" in cgroup.note()


def test_v2_read_stats(kernel):
    leaf = cgroup.create("lumos-1-abc", 1 << 30, 8)
    d = Path(leaf.dirs[0])
    (d / "memory.peak").write_text("123456789\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 2\noom_kill 3\noom_group_kill 0\n")
    (d / "cpu.stat").write_text("usage_usec 100\nnr_periods 9\nnr_throttled 4\nthrottled_usec 5\n")
    assert cgroup.read_stats(leaf) == {"peak_kb": 123456789 // 1024, "oom_kills": 3, "limit_hits": 7,
                                       "cpu_throttled": 4 if leaf.cpu else 0}
    (d / "memory.peak").unlink()  # kernels before 5.19 have no memory.peak
    (d / "memory.events").write_text("garbage\n")
    (d / "cpu.stat").write_text("garbage\n")
    assert cgroup.read_stats(leaf) == {"peak_kb": 0, "oom_kills": 0, "limit_hits": 0, "cpu_throttled": 0}


def test_v2_release_kills_through_cgroup_kill_and_sweep_removes_dead_hosts(kernel):
    leaf = cgroup.create("lumos-1-abc", 1 << 30, 8)
    d = Path(leaf.dirs[0])
    (d / "cgroup.procs").write_text("4194307")  # a straggler (above PID_MAX_LIMIT: never a real process)
    cgroup.release(leaf)  # never waits: killed now, removed at the next create
    assert d.exists() and cgroup._pending == [leaf] and kernel.procs(d) == []
    assert (kernel.rel(d / "cgroup.kill"), "1") in kernel.writes
    nxt = cgroup.create("lumos-1-next", 1 << 30, 8)
    assert nxt is not None and not d.exists() and cgroup._pending == []
    assert cgroup.remove(nxt, wait=0.0)
    # sweep: leaves and the moved-host cgroup of dead hosts go; a live host's leaf and other cgroups stay
    for name in ("lumos-999999-aa", "lumos-999999-host", "lumos-888888-bb", "other"):
        kernel.mkdir(str(kernel.here / name))
    (kernel.here / "lumos-999999-aa" / "cgroup.procs").write_text("4194309")
    kernel.self_cgroup.write_text(f"0::{OWN}/lumos-{PID}-host\n")  # where this process now is
    assert cgroup.sweep(lambda pid: pid == 888888) == 2
    left = sorted(p.name for p in kernel.here.iterdir() if p.is_dir())
    assert left == sorted(["lumos-888888-bb", f"lumos-{PID}-host", "other"])


def test_v1_memsw_limit_is_raised_before_the_memory_limit(kernel, monkeypatch):
    """v1 refuses memory.limit_in_bytes above memory.memsw.limit_in_bytes: growing a standby's leaf must
    write memsw first, shrinking it memory first."""
    kernel.v2 = False
    root = kernel.root
    (root / "cgroup.controllers").unlink()
    for ctrl in ("memory", "pids", "cpu"):
        (root / ctrl / "jobs").mkdir(parents=True)
    kernel.self_cgroup.write_text("4:memory:/jobs\n8:pids:/jobs\n1:cpu,cpuacct:/jobs\n0::/\n")
    write = kernel.write

    def strict(path, value):
        p = Path(path)
        if p.name == "memory.limit_in_bytes" and (p.parent / "memory.memsw.limit_in_bytes").exists():
            memsw = (p.parent / "memory.memsw.limit_in_bytes").read_text()
            if memsw.isdigit() and int(value) > int(memsw):
                raise OSError(errno.EINVAL, "memory limit above memsw limit")
        write(path, value)

    monkeypatch.setattr(cgroup, "_write", strict)
    real_mkdir = kernel.mkdir

    def mkdir(path):
        real_mkdir(path)
        if "/memory/" in path:
            (Path(path) / "memory.memsw.limit_in_bytes").write_text("max")

    monkeypatch.setattr(cgroup, "_mkdir", mkdir)
    leaf = cgroup.create("lumos-1-abc", 100 << 20, 8, 1.0)
    assert leaf is not None and leaf.version == "v1" and leaf.cpu
    assert cgroup.configure(leaf, 200 << 20, 8, 1.0)
    assert cgroup.configure(leaf, 50 << 20, 8, 1.0)
    mem = [(k.rsplit("/", 1)[1], int(v)) for k, v in kernel.writes if "memory." in k]
    assert mem == [("memory.limit_in_bytes", 100 << 20), ("memory.memsw.limit_in_bytes", 100 << 20),
                   ("memory.memsw.limit_in_bytes", 200 << 20), ("memory.limit_in_bytes", 200 << 20),
                   ("memory.limit_in_bytes", 50 << 20), ("memory.memsw.limit_in_bytes", 50 << 20)]
    assert (Path(leaf.dirs[1]) / "pids.max").read_text() == "8"
    assert (Path(leaf.dirs[2]) / "cpu.cfs_quota_us").read_text() == "100000"

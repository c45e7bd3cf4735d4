"""Run untrusted Python in a sandbox and return a structured :class:`Verdict`.

The host side: it sweeps what dead hosts left behind (once per process), prepares a fresh working directory
and a root-only control directory (both named after this process's pid), a cgroup leaf when the host allows
one, and the seccomp program; starts ``_launcher.py`` (which isolates and limits the job, see its docstring)
through the fork server or as a fresh process, holding the write end of the job's lifeline pipe; reads
stdout, stderr, the results pipe and the status pipe without deadlock; kills the whole process group on the
backstop deadline or the output cap; sweeps up every process of the sandbox's private uids when there was no
PID namespace; reads the cgroup's kernel counters; and removes the leaf and both directories (iteratively,
never raising).

Example::

    >>> from lumos.sandbox import run_tests
    >>> v = run_tests("def add(a, b):\\n    return a + b\\n", "def test_add():\\n    assert add(2, 3) == 5\\n")
    >>> v.exit_reason, v.passed
    ('ok', ['test_add'])
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lumos.core.errors import LumosError, bad_param
from lumos.sandbox import cgroup
from lumos.sandbox._shared import CONTROL_PREFIX, LANG, LAUNCHER, PATH, PREFIX
from lumos.sandbox.cleanup import rmtree, sweep_leftovers
from lumos.sandbox.forkserver import MAX_STANDBYS, ForkServer
from lumos.sandbox.limits import SandboxLimits
from lumos.sandbox.seccomp import filter_program
from lumos.sandbox.verdict import EXIT_REASONS, SPLIT_MODES, Verdict, build_verdict, parse_lines

__all__ = ["Verdict", "SandboxJob", "run_job", "run_tests", "run_script", "run_repo", "EXIT_REASONS"]

_MODES = ("tests", "script", "repo", "repo-inprocess", "command")
_RESULTS_CAP = 4 << 20
_RUNNER_UID_OFFSET = 1_000_000_000
_SWEEP = (
    "import os, signal, sys\n"
    "u = int(sys.argv[1]); os.setgroups([]); os.setgid(u); os.setuid(u)\n"
    "for _ in range(1000):\n"
    "    try:\n"
    "        os.kill(-1, signal.SIGKILL)\n"
    "    except ProcessLookupError:\n"
    "        break\n"
)


@dataclass
class SandboxJob:
    """One unit of sandboxed work.

    Modes: ``tests`` (``source`` is loaded as module ``solution``; the test functions in ``tests`` see its
    names and run against it), ``script`` (``source`` runs as ``__main__``), ``repo`` (``files`` maps
    relative paths to contents; the ``test_*`` functions and ``TestCase`` methods of ``test_files`` run in
    the trusted test runner, and the repository's modules they import run in the candidate's process, used
    through proxies), ``repo-inprocess`` (the same tests, imported with the repository in one interpreter:
    for tests that need the candidate's real objects; its results are forgeable) and ``command``
    (``command`` argv runs in the repository; the word ``python`` is replaced by the sandbox's interpreter;
    passing means exit status 0). ``Verdict.integrity`` states what each mode guarantees.

    ``support_files`` (repository modes): the rest of the tests' own files (helpers, ``conftest.py``, data).
    In ``repo`` mode they never enter the candidate's working directory and their modules are imported in the
    trusted runner (``import helpers`` from a test in ``tests/`` finds ``tests/helpers.py``, as pytest's
    default import mode would); in ``repo-inprocess`` and ``command`` modes they are root-owned and
    read-only, like the test files.

    The tests that exist are the ones the test runner collects when it loads the test files (``test*``
    functions, ``unittest`` test methods), never a reading of their text: ``Verdict.passed``/``failed``
    hold exactly those.
    """

    mode: str = "tests"
    source: str = ""
    tests: str = ""
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    test_files: list[str] = field(default_factory=list)
    support_files: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    namespaces: bool = True

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise bad_param("mode", f"one of {', '.join(_MODES)}", self.mode, owner="SandboxJob")
        if self.mode == "command" and not self.command:
            raise bad_param("command", "a non-empty argv list in command mode", self.command, owner="SandboxJob")
        for name in ("source", "tests"):
            if not isinstance(getattr(self, name), str):
                raise bad_param(name, "Python source code as a str", type(getattr(self, name)).__name__,
                                owner="SandboxJob", type_error=True, fix="Decode bytes with .decode('utf-8').")
        if not isinstance(self.limits, SandboxLimits):
            raise bad_param("limits", "a SandboxLimits", type(self.limits).__name__, owner="SandboxJob",
                            type_error=True)
        for name in ("test_files", "support_files"):
            for rel in getattr(self, name):
                if rel not in self.files:
                    raise bad_param(name, "paths present in files", rel, owner="SandboxJob")
        for what, source in _test_sources(self) + [(r, self.files[r]) for r in self.support_files if r.endswith(".py")]:
            _check_source(what, source)


def _check_source(what: str, source: str | bytes) -> None:
    """A test file the task ships must be UTF-8 Python that compiles (a clear error before any sandbox)."""
    try:
        compile(_text(source), what, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except UnicodeDecodeError as exc:
        raise LumosError(f"The test source {what!r} is not UTF-8 ({exc.reason} at byte {exc.start}). Fix the "
                         "tests.") from None
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise LumosError(f"The test source {what!r} does not parse: {type(exc).__name__}: {exc}. Fix the "
                         "tests.") from None


def run_tests(source: str, tests: str, limits: SandboxLimits | None = None, **kw: Any) -> Verdict:
    """Run hidden ``tests`` (``test_*`` functions using the candidate's names) against ``source``."""
    return run_job(SandboxJob("tests", source=source, tests=tests, limits=limits or SandboxLimits(), **kw))


def run_script(source: str, limits: SandboxLimits | None = None, **kw: Any) -> Verdict:
    """Run ``source`` as a script (``exit_reason`` ``ok`` iff it exits with status 0)."""
    return run_job(SandboxJob("script", source=source, limits=limits or SandboxLimits(), **kw))


def run_repo(files: Mapping[str, str | bytes], test_files: list[str], command: list[str] | None = None,
             limits: SandboxLimits | None = None, in_process: bool = False, **kw: Any) -> Verdict:
    """Run a repository's tests: the trusted runner (default), the in-process harness, or ``command``."""
    mode = "command" if command else "repo-inprocess" if in_process else "repo"
    return run_job(SandboxJob(mode, files=files, test_files=test_files, command=command or [],
                              limits=limits or SandboxLimits(), **kw))


def _write_files(workdir: Path, job: SandboxJob) -> None:
    files = dict(job.files)
    if job.mode == "repo":  # the tests and their files live in the runner, from the control directory only
        hidden = set(job.test_files) | set(job.support_files)
        files = {k: v for k, v in files.items() if k not in hidden}
    if job.mode == "tests":
        files["solution.py"] = job.source
    elif job.mode == "script":
        files["main.py"] = job.source
    for rel, content in files.items():
        path = (workdir / rel).resolve()
        if not str(path).startswith(str(workdir) + os.sep):
            raise bad_param("files", "relative paths inside the working directory", rel, owner="SandboxJob")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def _test_sources(job: SandboxJob) -> list[tuple[str, str | bytes]]:
    """``(name, source)`` of the test files the job runs."""
    if job.mode == "tests":
        return [("hidden_tests.py", job.tests)]
    if job.mode in ("repo", "repo-inprocess"):
        return [(rel, job.files[rel]) for rel in job.test_files]
    return []


def _runner_sources(job: SandboxJob) -> dict[str, list[list[str]] | list[str]]:
    """What the test runner alone reads, from the control directory: the test files' ``[name, source]`` and
    (repository mode) the tests' own Python modules; never the candidate's working directory."""
    support = [[rel, _text(job.files[rel])] for rel in job.support_files if rel.endswith(".py")]
    return {"tests": [[name, _text(src)] for name, src in _test_sources(job)], "support": support,
            "packages": _own_dirs(job)}


def _own_dirs(job: SandboxJob) -> list[str]:
    """Directories holding nothing but the tests' own files: packages of the runner, never the candidate's."""
    own = set(job.test_files) | set(job.support_files)
    dirs = {"/".join(rel.split("/")[:i]) for rel in own for i in range(1, rel.count("/") + 1)}
    return sorted(d for d in dirs if all(f in own for f in job.files if f.startswith(d + "/")))


def _text(content: str | bytes) -> str:
    return content.decode("utf-8") if isinstance(content, bytes) else content


def _chown_tree(root: Path, uid: int) -> None:
    os.chown(root, uid, uid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)


def _blocked(path: Path) -> bool:
    """True when some directory on the way to ``path`` may not be traversed by other users."""
    return any(not (p.stat().st_mode & 0o001) for p in [path, *path.parents])


def _sweep(uid: int) -> None:
    """Kill every process of the sandbox's private uid (as that uid: ``kill(-1, SIGKILL)``)."""
    subprocess.run([sys.executable, "-I", "-S", "-c", _SWEEP, str(uid)], timeout=10, check=False,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class _Pump:
    """Reads the four pipes with one selector; enforces the output cap."""

    def __init__(self, fds: dict[str, int], limits: SandboxLimits):
        self.limits = limits
        self.sel = selectors.DefaultSelector()
        self.bufs: dict[str, bytearray] = {k: bytearray() for k in ("stdout", "stderr", "results", "status")}
        self.dropped = {"stdout": False, "stderr": False}
        self.total_output = 0
        for name, fd in fds.items():
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, name)

    @property
    def open(self) -> bool:
        return bool(self.sel.get_map())

    def poll(self, timeout: float) -> str | None:
        """Read what is ready; returns ``output_limit`` when the output cap is crossed."""
        for key, _ in self.sel.select(max(timeout, 0.0)):
            name = key.data
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                self.sel.unregister(key.fd)
                continue
            if name in ("stdout", "stderr"):
                self.total_output += len(chunk)
                room = self.limits.keep_output_bytes - len(self.bufs[name])
                self.bufs[name] += chunk[:max(room, 0)]
                self.dropped[name] |= len(chunk) > room
                if self.total_output > self.limits.max_output_bytes:
                    return "output_limit"
            else:
                self.bufs[name] += chunk
                if len(self.bufs[name]) > _RESULTS_CAP:
                    return "output_limit"
        return None

    def close(self) -> None:
        self.sel.close()


def _kill_group(pgid: int | None) -> None:
    if pgid is None:
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _drive(proc: subprocess.Popen | None, pump: _Pump, limits: SandboxLimits, t0: float) -> str | None:
    """Pump until every pipe closes; returns the kill reason (``timeout``/``output_limit``) or None.

    The sandbox's own PID 1 enforces the wall time; this deadline (one second later) is the backstop."""
    deadline = t0 + limits.wall_time + 1.0
    exited_at: float | None = None
    while pump.open:
        now = time.monotonic()
        if now >= deadline:
            return "timeout"
        if b'"exit"' in pump.bufs["status"] and (proc is None or proc.poll() is not None):
            exited_at = exited_at or now
            if now - exited_at > 0.2:  # only escaped descendants still hold the pipes
                return "leftover"
        reason = pump.poll(min(deadline - now, 0.05))
        if reason:
            return reason
    return None


def _start(cfg_path: Path, fds: list[int], env: dict[str, str], fork_server: bool,
           leaf: cgroup.Leaf | None = None) -> subprocess.Popen | None:
    """Hand the job to the fork server (returns None) or spawn a fresh launcher (returns its Popen)."""
    if fork_server:
        for _ in range(2):
            try:
                # a leaf from this server's standby goes to that standby; after a restart the name is
                # unknown and a fresh fork joins the leaf itself
                ForkServer.shared().submit(str(cfg_path), fds, leaf)
                return None
            except OSError:  # the server died: the next shared() starts a new one
                continue
    return subprocess.Popen([sys.executable, "-I", "-S", "-B", LAUNCHER, str(cfg_path)],
                            stdin=subprocess.DEVNULL, stdout=fds[0], stderr=fds[1], cwd="/", env=env,
                            pass_fds=tuple(fds[2:]), start_new_session=True, close_fds=True)


def _check_host_limits(limits: SandboxLimits) -> None:
    """The sandbox sets its rlimits from this process's: one above a hard limit here would be refused in the
    sandbox (without CAP_SYS_RESOURCE), so it is a clear error now instead."""
    import resource

    from lumos.sandbox import _isolate

    for name, which, value in _isolate.rlimits(limits.to_dict()):
        hard = resource.getrlimit(which)[1]
        if hard != resource.RLIM_INFINITY and value > hard:
            unit = 2**20 if name in ("memory_mb", "max_file_mb") else 1
            raise bad_param(name, f"at most {hard // unit} on this machine (this process's hard limit)",
                            getattr(limits, name), owner="SandboxLimits")


def _leaf_name() -> str:
    return f"lumos-{os.getpid()}-{secrets.token_hex(6)}"


def _caps(limits: SandboxLimits) -> tuple[int, int, float]:
    """The cgroup caps of a job: total memory, processes (+8 for launcher, init and runner), CPU cores."""
    return limits.total_memory_bytes, limits.max_processes + 8, limits.cpu_cores


def _job_leaf(limits: SandboxLimits, fork_server: bool) -> cgroup.Leaf | None:
    """The job's cgroup leaf: a fork-server standby's (joined ahead of time), else a new one."""
    cgroup.v2_parent()  # decided before the fork server starts: on v2 this process may have to move alone
    if fork_server:
        leaf = ForkServer.shared().take_standby()
        if leaf is not None:
            if cgroup.configure(leaf, *_caps(limits)):
                return leaf
            cgroup.release(leaf)
    return cgroup.create(_leaf_name(), *_caps(limits))


def _refill(limits: SandboxLimits) -> None:
    """After a fork-server job started: standbys join new leaves for the next jobs, off their critical path.

    Two at least, so that back-to-back jobs take a standby that started joining two jobs ago (a join can
    take longer than one job); each job that takes one adds one (up to ``MAX_STANDBYS``)."""
    server = ForkServer.shared()
    for _ in range(2):
        if len(server.standbys) >= MAX_STANDBYS:
            return
        leaf = cgroup.create(_leaf_name(), *_caps(limits))
        if leaf is None or not server.add_standby(leaf):
            if leaf is not None:
                cgroup.release(leaf)
            return
        if len(server.standbys) >= 2:
            return


def _config(job: SandboxJob, workdir: Path, control: Path, uid: int | None, fds: list[int],
            leaf: cgroup.Leaf | None) -> dict[str, Any]:
    env = {"PATH": PATH, "HOME": str(workdir), "TMPDIR": str(workdir), "LANG": LANG, "PYTHONDONTWRITEBYTECODE": "1"}
    program, note = filter_program()
    protected = list(job.test_files) + list(job.support_files) if job.mode in ("repo-inprocess", "command") else []
    return {"mode": job.mode, "workdir": str(workdir), "control": str(control), "uid": uid,
            "runner_uid": None if uid is None else uid + _RUNNER_UID_OFFSET, "limits": job.limits.to_dict(),
            "test_files": job.test_files, "protected": protected, "command": job.command, "env": env,
            "namespaces": job.namespaces, "split": job.mode in SPLIT_MODES, "seccomp": program.hex() if program else "", "seccomp_note": note,
            "cgroup_procs": leaf.procs if leaf else [], "cgroup_version": leaf.version if leaf else "none",
            "results_fd": fds[2], "status_fd": fds[3], "lifeline_fd": fds[4]}


def _fill_dirs(job: SandboxJob, workdir: Path, control: Path, uid: int | None) -> None:
    """The job's files into ``workdir`` (owned by the sandbox ``uid`` when there is one) and, for the split
    modes, the trusted runner's sources into ``control``."""
    _write_files(workdir, job)
    if uid is not None:
        _chown_tree(workdir, uid)
    if job.mode in SPLIT_MODES:
        fd = os.open(control / "tests.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(_runner_sources(job), f)


def _sweep_job(job: SandboxJob, uid: int | None, needed: bool) -> bool:
    """Kill what is left of the sandbox user (and of the runner's user in the split modes) when ``needed`` and
    there is a sandbox user; True when it swept."""
    if uid is None or not needed:
        return False
    _sweep(uid)
    if job.mode in SPLIT_MODES:
        _sweep(uid + _RUNNER_UID_OFFSET)
    return True


def run_job(job: SandboxJob, base_dir: str | os.PathLike | None = None, fork_server: bool = True) -> Verdict:
    """Run ``job`` in a fresh sandbox; always returns a :class:`Verdict` for the job's own failures.

    ``fork_server=False`` spawns a fresh launcher interpreter instead of forking one from the warm
    :class:`~lumos.sandbox.forkserver.ForkServer` (same isolation, slower start; the reference path).
    Never raises for anything the sandboxed code does; host-side problems (bad job) raise ``LumosError``.
    """
    _check_host_limits(job.limits)
    sweep_leftovers([base_dir] if base_dir is not None else None)
    limits = job.limits
    uid = 2_000_000 + secrets.randbelow(1_000_000_000) if os.geteuid() == 0 else None
    if uid is not None and not job.namespaces and base_dir is not None and _blocked(Path(base_dir).resolve()):
        raise bad_param("base_dir", "a directory other users may enter (o+x on it and every parent) when "
                        "namespaces=False", str(base_dir), fix="Use e.g. /tmp, or keep namespaces on (the "
                        "working directory is then a tmpfs inside the sandbox).")
    tag = f"{os.getpid()}-"
    workdir = Path(tempfile.mkdtemp(prefix=PREFIX + tag, dir=base_dir)).resolve()
    control = Path(tempfile.mkdtemp(prefix=CONTROL_PREFIX + tag))
    leaf = None
    names = ("stdout", "stderr", "results", "status")
    pipes = {name: os.pipe() for name in names}
    life_r, life_w = os.pipe()
    writers = [pipes[n][1] for n in names] + [life_r]
    t0 = time.monotonic()
    proc = pump = None
    try:
        _fill_dirs(job, workdir, control, uid)
        leaf = _job_leaf(limits, fork_server) if job.namespaces else None
        cfg = _config(job, workdir, control, uid, writers, leaf)
        (control / "config.json").write_text(json.dumps(cfg))
        proc = _start(control / "config.json", writers, cfg["env"], fork_server, leaf)
        for fd in writers:
            os.close(fd)
        writers = []
        if proc is None and leaf is not None:
            _refill(limits)
        pump = _Pump({n: pipes[n][0] for n in names}, limits)
        killed = _drive(proc, pump, limits, t0)
        status = parse_lines(pump.bufs["status"])
        pid = proc.pid if proc is not None else next(
            (d["pid"] for d in status if isinstance(d.get("pid"), int) and d["pid"] > 1), None)
        if killed:
            _kill_group(pid)
        iso = next((d["isolation"] for d in status if isinstance(d.get("isolation"), dict)), {})
        swept = _sweep_job(job, uid, killed is not None or not iso.get("pid", False))
        end = time.monotonic() + 1.0
        while pump.open and time.monotonic() < end:
            pump.poll(0.05)
        if proc is not None:
            proc.wait(timeout=10)
        stats = cgroup.read_stats(leaf) if leaf is not None else None
        verdict = build_verdict(job.mode, pump.bufs, pump.dropped, killed if killed != "leftover" else None,
                                limits, time.monotonic() - t0, stats)
        verdict.uid, verdict.swept = uid, swept
        verdict.isolation["cgroup_cpu"] = bool(leaf is not None and leaf.cpu)
        if leaf is None and job.namespaces:
            verdict.isolation["cgroup_note"] = cgroup.note()
        return verdict
    finally:
        if proc is not None and proc.poll() is None:
            _kill_group(proc.pid)
            proc.wait(timeout=10)
        if pump is not None:
            pump.close()
        for fd in [pipes[n][0] for n in names] + writers + [life_w]:
            try:
                os.close(fd)
            except OSError:
                pass
        if leaf is not None:
            cgroup.release(leaf)
        rmtree(workdir)
        rmtree(control)

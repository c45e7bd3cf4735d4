"""Run untrusted Python in a sandbox and return a structured :class:`Verdict`.

The host side: it prepares a fresh working directory, starts ``_launcher.py`` (which isolates and limits
the job, see its docstring) in a new session with a scrubbed environment, reads stdout, stderr, the results
pipe and the status pipe without deadlock, enforces the wall-time and output limits by killing the whole
process group, sweeps up every process of the sandbox's private uid (escaped grandchildren included), and
deletes the working directory.

Example::

    >>> from lumos.rl.sandbox import run_tests
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
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lumos.core.errors import LumosError, bad_param
from lumos.rl.sandbox.forkserver import ForkServer
from lumos.rl.sandbox.limits import SandboxLimits

__all__ = ["Verdict", "SandboxJob", "run_job", "run_tests", "run_script", "run_repo", "expected_tests",
           "EXIT_REASONS"]

#: Why a sandboxed run ended. ``error`` means the sandbox itself could not be set up.
EXIT_REASONS = ("ok", "timeout", "memory", "crash", "output_limit", "error")
_LAUNCHER = Path(__file__).with_name("_launcher.py")
_MODES = ("tests", "script", "repo", "command")
_RESULTS_CAP = 4 << 20
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
class Verdict:
    """The outcome of one sandboxed run.

    ``passed``/``failed`` hold test ids (``test_name``, ``Class.test_method``, or ``file.py::test_name`` in
    repository mode); every expected test the harness did not report as passing is failed. The isolation
    flags say what was actually in force for this run, as reported by the launcher.
    """

    exit_reason: str
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    load_error: str | None = None
    reports: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    returncode: int | None = None
    signal: int | None = None
    wall_time: float = 0.0
    cpu_time: float = 0.0
    max_rss_kb: int = 0
    network_isolated: bool = False
    pid_namespace: bool = False
    readonly_fs: bool = False
    uid_dropped: bool = False
    uid: int | None = None
    swept: bool = False

    @property
    def n_tests(self) -> int:
        return len(self.passed) + len(self.failed)

    @property
    def pass_fraction(self) -> float:
        """Fraction of tests passed (0.0 when there are no tests)."""
        return len(self.passed) / self.n_tests if self.n_tests else 0.0

    @property
    def all_passed(self) -> bool:
        return self.n_tests > 0 and not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pass_fraction": self.pass_fraction}


@dataclass
class SandboxJob:
    """One unit of sandboxed work.

    Modes: ``tests`` (``source`` is loaded as module ``solution``; the test functions in ``tests`` see its
    names and run against it), ``script`` (``source`` runs as ``__main__``), ``repo`` (``files`` maps
    relative paths to contents; the ``test_*`` functions and ``TestCase`` methods of ``test_files`` run
    with the repository on ``sys.path``) and ``command`` (``command`` argv runs in the repository; the word
    ``python`` is replaced by the sandbox's interpreter; passing means exit status 0).
    """

    mode: str = "tests"
    source: str = ""
    tests: str = ""
    files: dict[str, str | bytes] = field(default_factory=dict)
    test_files: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    namespaces: bool = True

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise bad_param("mode", f"one of {', '.join(_MODES)}", self.mode, owner="SandboxJob")
        if self.mode == "command" and not self.command:
            raise bad_param("command", "a non-empty argv list in command mode", self.command, owner="SandboxJob")


def expected_tests(job: SandboxJob) -> list[str]:
    """Test ids the job should report, read from the test sources' syntax tree (never by running them)."""
    if job.mode == "tests":
        return _test_names(job.tests, "", "tests")
    if job.mode == "repo":
        out: list[str] = []
        for rel in job.test_files:
            if rel not in job.files:
                raise bad_param("test_files", "paths present in files", rel, owner="SandboxJob")
            content = job.files[rel]
            out += _test_names(content.decode() if isinstance(content, bytes) else content, rel + "::", rel)
        return out
    if job.mode == "command":
        return ["command"]
    return []


def _test_names(source: str, prefix: str, what: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise LumosError(f"The test source {what!r} does not parse: {exc}. Fix the tests.") from exc
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            names.append(prefix + node.name)
        elif isinstance(node, ast.ClassDef) and any("TestCase" in ast.unparse(b) for b in node.bases):
            names += [f"{prefix}{node.name}.{m.name}" for m in node.body
                      if isinstance(m, ast.FunctionDef) and m.name.startswith("test")]
    return names


def run_tests(source: str, tests: str, limits: SandboxLimits | None = None, **kw: Any) -> Verdict:
    """Run hidden ``tests`` (``test_*`` functions using the candidate's names) against ``source``."""
    return run_job(SandboxJob("tests", source=source, tests=tests, limits=limits or SandboxLimits(), **kw))


def run_script(source: str, limits: SandboxLimits | None = None, **kw: Any) -> Verdict:
    """Run ``source`` as a script (``exit_reason`` ``ok`` iff it exits with status 0)."""
    return run_job(SandboxJob("script", source=source, limits=limits or SandboxLimits(), **kw))


def run_repo(files: dict[str, str | bytes], test_files: list[str], command: list[str] | None = None,
             limits: SandboxLimits | None = None, **kw: Any) -> Verdict:
    """Run a repository's tests (the built-in harness, or ``command`` when given)."""
    mode = "command" if command else "repo"
    return run_job(SandboxJob(mode, files=files, test_files=test_files, command=command or [],
                              limits=limits or SandboxLimits(), **kw))


def _write_files(workdir: Path, job: SandboxJob) -> None:
    files = dict(job.files)
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
    """Pump until every pipe closes; returns the kill reason (``timeout``/``output_limit``) or None."""
    deadline = t0 + limits.wall_time
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


def _lines(buf: bytearray) -> list[dict[str, Any]]:
    out = []
    for line in bytes(buf).decode("utf-8", "replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _start(cfg_path: Path, fds: list[int], workdir: Path, env: dict[str, str],
           fork_server: bool) -> subprocess.Popen | None:
    """Hand the job to the fork server (returns None) or spawn a fresh launcher (returns its Popen)."""
    if fork_server:
        for _ in range(2):
            try:
                ForkServer.shared().submit(str(cfg_path), fds)
                return None
            except OSError:  # the server died: the next shared() starts a new one
                continue
    return subprocess.Popen([sys.executable, "-I", "-S", "-B", str(_LAUNCHER), str(cfg_path)],
                            stdin=subprocess.DEVNULL, stdout=fds[0], stderr=fds[1], cwd=workdir, env=env,
                            pass_fds=tuple(fds[2:]), start_new_session=True, close_fds=True)


def run_job(job: SandboxJob, base_dir: str | os.PathLike | None = None, fork_server: bool = True) -> Verdict:
    """Run ``job`` in a fresh sandbox; always returns a :class:`Verdict` for the job's own failures.

    ``fork_server=False`` spawns a fresh launcher interpreter instead of forking one from the warm
    :class:`~lumos.rl.sandbox.forkserver.ForkServer` (same isolation, slower start; the reference path).
    """
    expected = expected_tests(job)
    limits = job.limits
    uid = 2_000_000 + secrets.randbelow(1_000_000_000) if os.geteuid() == 0 else None
    if uid is not None and base_dir is not None and _blocked(Path(base_dir).resolve()):
        raise bad_param("base_dir", "a directory other users may enter (o+x on it and every parent)",
                        str(base_dir), fix="The sandbox runs as an unprivileged uid; use e.g. /tmp.")
    workdir = Path(tempfile.mkdtemp(prefix="lumos-sbx-", dir=base_dir)).resolve()
    control = Path(tempfile.mkdtemp(prefix="lumos-sbx-ctl-"))
    names = ("stdout", "stderr", "results", "status")
    pipes = {name: os.pipe() for name in names}
    writers = [pipes[n][1] for n in names]
    t0 = time.monotonic()
    proc = pump = None
    try:
        _write_files(workdir, job)
        if uid is not None:
            _chown_tree(workdir, uid)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(workdir),
               "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        cfg = {"mode": job.mode, "workdir": str(workdir), "uid": uid, "limits": limits.to_dict(),
               "tests_source": job.tests, "test_files": job.test_files, "command": job.command, "env": env,
               "results_fd": writers[2], "status_fd": writers[3], "namespaces": job.namespaces}
        (control / "config.json").write_text(json.dumps(cfg))
        proc = _start(control / "config.json", writers, workdir, env, fork_server)
        for fd in writers:
            os.close(fd)
        writers = []
        pump = _Pump({n: pipes[n][0] for n in names}, limits)
        killed = _drive(proc, pump, limits, t0)
        pid = proc.pid if proc is not None else next(
            (d["pid"] for d in _lines(pump.bufs["status"]) if isinstance(d.get("pid"), int)), None)
        if killed:
            _kill_group(pid)
        iso = next((d["isolation"] for d in _lines(pump.bufs["status"]) if "isolation" in d), {})
        swept = uid is not None and (killed is not None or not iso.get("pid", False))
        if swept:
            _sweep(uid)
        end = time.monotonic() + 1.0
        while pump.open and time.monotonic() < end:
            pump.poll(0.05)
        if proc is not None:
            proc.wait(timeout=10)
        verdict = _verdict(job, expected, pump, killed, iso, time.monotonic() - t0)
        verdict.uid, verdict.swept = uid, swept
        return verdict
    finally:
        if proc is not None and proc.poll() is None:
            _kill_group(proc.pid)
            proc.wait(timeout=10)
        if pump is not None:
            pump.close()
        for fd in [pipes[n][0] for n in names] + writers:
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(control, ignore_errors=True)


def _verdict(job: SandboxJob, expected: list[str], pump: _Pump, killed: str | None, iso: dict[str, Any],
             wall: float) -> Verdict:
    events = _lines(pump.bufs["results"])
    status = next((d["exit"] for d in _lines(pump.bufs["status"]) if "exit" in d), None)
    results = {e["test"]: e for e in events if "test" in e and isinstance(e["test"], str)}
    v = Verdict(exit_reason="ok", wall_time=wall)
    v.stdout = bytes(pump.bufs["stdout"]).decode("utf-8", "replace")
    v.stderr = bytes(pump.bufs["stderr"]).decode("utf-8", "replace")
    v.stdout_truncated, v.stderr_truncated = pump.dropped["stdout"], pump.dropped["stderr"]
    v.network_isolated, v.pid_namespace = bool(iso.get("net")), bool(iso.get("pid"))
    v.readonly_fs, v.uid_dropped = bool(iso.get("readonly_fs")), bool(iso.get("uid_dropped"))
    v.load_error = next((e["load_error"] for e in events if "load_error" in e), None)
    v.reports = {str(e["report"]): e.get("value") for e in events if "report" in e}
    if status:
        v.returncode, v.signal = status["code"], status["signal"]
        v.cpu_time, v.max_rss_kb = float(status["cpu_time"]), int(status["max_rss_kb"])
    if job.mode == "command":
        results = {"command": {"passed": status is not None and status["code"] == 0 and not killed}}
    for name in expected:
        r = results.get(name)
        if r is not None and r.get("passed") is True:
            v.passed.append(name)
        else:
            v.failed.append(name)
            v.errors[name] = str((r or {}).get("error") or ("did not finish" if r is None else "failed"))
    memory = any(e.get("memory") for e in events) or "MemoryError" in v.stderr
    too_large = "File too large" in v.stderr or any("File too large" in str(e.get("error")) for e in events)
    v.exit_reason = _exit_reason(killed, status, memory, too_large, job.limits)
    harness = next((e["harness_error"] for e in events if "harness_error" in e), None)
    if harness and v.exit_reason == "ok":
        v.exit_reason, v.load_error = "crash", v.load_error or harness
    return v


def _exit_reason(killed: str | None, status: dict[str, Any] | None, memory: bool, file_too_large: bool,
                 limits: SandboxLimits) -> str:
    if killed in ("timeout", "output_limit"):
        return killed
    if status is None:
        return "crash"
    sig, code = status["signal"], status["code"]
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and status["cpu_time"] >= limits.cpu_time - 0.05):
        return "timeout"
    if sig == signal.SIGXFSZ or file_too_large:
        return "output_limit"
    if memory:
        return "memory"
    if code == 98:
        return "error"
    return "ok" if code == 0 and sig is None else "crash"

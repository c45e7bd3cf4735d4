"""The in-sandbox side: isolation set-up (as root) and the test harness (as the sandbox user).

This file runs as a standalone script under ``python -I -S -B`` and imports the standard library only
(it must not import lumos: the sandbox sees no site-packages). The host (:mod:`lumos.rl.sandbox.runner`)
starts it in a new session with a config file readable by root only::

    python -I -S -B _launcher.py CONFIG.json

Steps (each best effort, each reported on the status pipe so the verdict never claims what did not happen):

1. ``unshare`` new network, PID, mount, IPC and UTS namespaces (``ctypes`` ``libc.unshare``: Python 3.11 has
   no ``os.unshare``). The new network namespace has only a loopback device that is down: no connection
   can leave it, not even to 127.0.0.1 of the host.
2. In the mount namespace: make ``/`` private, bind the working directory onto itself, re-expose the Python
   standard library when it sits under a directory the sandbox user may not enter (e.g. ``/root``, which
   is then hidden behind an empty tmpfs), and remount every other mount read-only.
3. ``fork``: the child is PID 1 of the new PID namespace, so when it exits the kernel kills every process
   it left behind. The child mounts a fresh ``/proc``, sets the resource limits, drops to a fresh
   unprivileged uid (``RLIMIT_NPROC`` is per uid, so a fresh uid makes it a per-sandbox limit), asks for
   ``SIGKILL`` when the launcher dies, and runs the job.
4. The launcher waits, then writes the exit status and resource usage on the status pipe.

Side channel: the harness writes one JSON object per line to the results fd (never stdout, which the
candidate owns). The candidate runs in the same interpreter as the harness, so deliberately forged results
are possible in principle; the host counts every test the harness did not report as failed.
"""

import ctypes
import json
import os
import resource
import signal
import sys
import traceback

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
_SKIP_RO = ("/proc", "/sys")
_PRELOAD = ("socket", "subprocess", "math", "re", "collections", "itertools", "functools", "string", "random",
            "time", "json", "heapq", "bisect", "typing", "dataclasses", "fractions", "decimal", "statistics",
            "operator", "copy", "threading", "tempfile", "pathlib", "shutil", "io", "struct", "ctypes")

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()
    if _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _unshare(flags):
    return _libc.unshare(ctypes.c_int(flags)) == 0


def _namespaces(cfg):
    """Unshare what the kernel allows; returns {"net": bool, "pid": bool, "mount": bool}."""
    want = {"net": CLONE_NEWNET, "pid": CLONE_NEWPID, "mount": CLONE_NEWNS}
    if not cfg.get("namespaces", True):
        return {k: False for k in want}
    if _unshare(CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS):
        return {k: True for k in want}
    return {k: _unshare(flag) for k, flag in want.items()}


def _mountpoints():
    with open("/proc/self/mounts") as f:
        rows = [line.split() for line in f]
    decode = lambda s: s.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
    return [decode(r[1]) for r in rows if len(r) > 1]


def _blocked_ancestor(path):
    """The highest ancestor of ``path`` that others may not traverse (None when all are traversable)."""
    parts = os.path.abspath(path).split(os.sep)
    for i in range(2, len(parts) + 1):
        d = os.sep.join(parts[:i]) or os.sep
        if not os.stat(d).st_mode & 0o001:
            return d
    return None


def _expose_stdlib(prefix):
    """Hide the blocked ancestor of ``prefix`` behind a tmpfs and bind ``prefix`` back into it."""
    blocked = _blocked_ancestor(prefix)
    if blocked is None:
        return True
    fd = os.open(prefix, os.O_PATH)
    try:
        _mount("tmpfs", blocked, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
        os.makedirs(prefix, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", prefix, None, MS_BIND | MS_REC)
    finally:
        os.close(fd)
    return True


def _readonly_filesystem(workdir):
    """Everything read-only except the working directory; returns True when every remount succeeded."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount(workdir, workdir, None, MS_BIND | MS_REC)
    _expose_stdlib(sys.base_prefix)
    ok = True
    for mp in _mountpoints():
        if mp == workdir or mp.startswith(workdir + "/") or any(mp == s or mp.startswith(s + "/") for s in _SKIP_RO):
            continue
        try:
            keep = os.statvfs(mp).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
            _mount(None, mp, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)
        except OSError:
            ok = False
    return ok


def _limit(name, value):
    value = int(value)
    resource.setrlimit(name, (value, value))


def _enter_sandbox(cfg, iso):
    """In the forked child: /proc, limits, privileges. Runs as root until the uid drop."""
    if iso["pid"] and iso["mount"]:
        try:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except OSError:
            pass
    lim = cfg["limits"]
    # soft == hard: PID 1 of a PID namespace ignores SIGXCPU, so the hard limit's SIGKILL must come at once
    _limit(resource.RLIMIT_CPU, max(1, round(lim["cpu_time"])))
    _limit(resource.RLIMIT_AS, lim["memory_mb"] * 2**20)
    _limit(resource.RLIMIT_FSIZE, lim["max_file_mb"] * 2**20)
    _limit(resource.RLIMIT_NOFILE, lim["max_open_files"])
    _limit(resource.RLIMIT_CORE, 0)
    uid = cfg.get("uid")
    if uid is not None and not (iso["mount"] and iso["readonly_fs"]) and _blocked_ancestor(sys.base_prefix):
        # the standard library sits under a directory the sandbox user cannot enter and no mount
        # namespace can re-expose it: import the common modules now, while still allowed to
        for name in _PRELOAD:
            try:
                __import__(name)
            except ImportError:
                pass
        iso["stdlib_preloaded"] = True
    if uid is not None:
        _limit(resource.RLIMIT_NPROC, lim["max_processes"])
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.chdir(cfg["workdir"])
    os.umask(0o077)


# ----------------------------------------------------------------------------------------------- harness
class _TestTimeout(BaseException):
    """Raised by the per-test alarm; a BaseException so candidate ``except Exception`` cannot swallow it."""


class _Channel:
    """Unbuffered JSON lines on the results fd (``os.write``: nothing buffered is lost on ``os._exit``)."""

    def __init__(self, fd):
        self.fd = fd

    def raw(self, data):
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError:
            pass

    def send(self, **obj):
        try:
            self.raw((json.dumps(obj, default=repr) + "\n").encode())
        except Exception:  # noqa: BLE001 - e.g. out of memory while encoding
            pass


def _describe(exc):
    if isinstance(exc, MemoryError):
        return "MemoryError"
    if isinstance(exc, AssertionError) and not exc.args:
        frames = traceback.extract_tb(exc.__traceback__)
        if frames and frames[-1].line:
            return f"AssertionError: {frames[-1].line.strip()}"[:400]
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text[-400:]


def _run_one(chan, test_id, fn, per_test):
    chan.send(start=test_id)
    # prepared now: when the candidate has used up the address space, even json.dumps may fail
    oom = (json.dumps({"test": test_id, "passed": False, "error": "MemoryError", "memory": True}) + "\n").encode()
    signal.setitimer(signal.ITIMER_REAL, per_test)
    passed, error = False, None
    try:
        fn()
        passed = True
    except _TestTimeout:
        error = "per-test time limit"
    except MemoryError:
        error = "MemoryError"
    except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt from the candidate fail the test
        try:
            error = _describe(exc)
        except MemoryError:
            error = "MemoryError"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if error == "MemoryError":
        chan.raw(oom)
    else:
        chan.send(test=test_id, passed=passed, error=error)


def _collect(namespace, prefix):
    """``test_*`` functions and ``unittest.TestCase`` test methods, in definition order."""
    unittest = sys.modules.get("unittest")  # no TestCase can exist unless the tests imported unittest
    out = []
    for name, obj in list(namespace.items()):
        if name.startswith("test") and callable(obj) and not isinstance(obj, type):
            out.append((prefix + name, obj))
        elif (unittest is not None and isinstance(obj, type) and issubclass(obj, unittest.TestCase)
              and obj is not unittest.TestCase):
            for meth in unittest.TestLoader().getTestCaseNames(obj):
                out.append((f"{prefix}{name}.{meth}", _case_runner(obj, meth)))
    return out


def _case_runner(cls, meth):
    def run():
        case = cls(meth)
        result = case.defaultTestResult()
        case.run(result)
        problems = result.errors + result.failures
        if problems:
            raise AssertionError(problems[0][1].strip().splitlines()[-1])
        if result.skipped:
            raise AssertionError("skipped")

    return run


def _load_module(name, path, chan):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException as exc:  # noqa: BLE001 - a candidate that raises or exits while loading
        chan.send(load_error=f"{name}: {_describe(exc)}", memory=isinstance(exc, MemoryError))
    return mod


def _alarm(signum, frame):
    raise _TestTimeout()


def _script(path):
    """Run ``path`` as ``__main__``; returns the exit status a plain ``python path`` would have."""
    sys.argv = [path]
    ns = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    try:
        with open(path) as f:
            code = compile(f.read(), path, "exec")
        exec(code, ns)  # noqa: S102 - this is the sandbox
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        return 1
    return 0


def _harness(cfg, chan):
    signal.signal(signal.SIGALRM, _alarm)
    per_test = float(cfg["limits"].get("per_test_time") or 0)
    report = lambda key, value: chan.send(report=key, value=value)
    mode = cfg["mode"]
    tests = []
    if mode == "tests":
        mod = _load_module("solution", os.path.join(cfg["workdir"], "solution.py"), chan)
        ns = {k: v for k, v in vars(mod).items() if not k.startswith("__")}
        ns.update(__name__="hidden_tests", solution=mod, report=report)
        import linecache

        src = cfg["tests_source"]
        linecache.cache["hidden_tests.py"] = (len(src), None, src.splitlines(True), "hidden_tests.py")
        exec(compile(src, "hidden_tests.py", "exec"), ns)  # noqa: S102 - our own tests
        tests = _collect({k: v for k, v in ns.items() if getattr(v, "__module__", None) == "hidden_tests"}, "")
    elif mode == "repo":
        sys.path.insert(0, cfg["workdir"])
        for rel in cfg["test_files"]:
            name = "_repo_test_" + rel.replace("/", "_").replace(".", "_")
            mod = _load_module(name, os.path.join(cfg["workdir"], rel), chan)
            own = {k: v for k, v in vars(mod).items() if getattr(v, "__module__", name) == name}
            tests += _collect(own, rel + "::")
    elif mode == "script":
        return _script(os.path.join(cfg["workdir"], "main.py"))
    chan.send(tests=[t for t, _ in tests])
    for test_id, fn in tests:
        _run_one(chan, test_id, fn, per_test)
    chan.send(done=True)
    return 0


def _child(cfg, iso, results_fd):
    try:
        _enter_sandbox(cfg, iso)
    except BaseException as exc:  # noqa: BLE001 - cannot run safely: say so and stop
        os.write(2, f"sandbox setup failed: {exc!r}\n".encode())
        os._exit(98)
    if cfg["mode"] == "command":
        os.closerange(3, 1 << 16)
        argv = [sys.executable if a == "python" else a for a in cfg["command"]]
        os.execvpe(argv[0], argv, cfg["env"])
    chan = _Channel(results_fd)
    try:
        code = _harness(cfg, chan)
    except BaseException as exc:  # noqa: BLE001 - harness error, reported
        chan.send(harness_error=_describe(exc), memory=isinstance(exc, MemoryError))
        code = 97
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    os._exit(code)


def _job(cfg):
    """One sandboxed run (the launcher's own process): isolate, fork PID 1, wait, report. Never returns."""
    status = os.fdopen(cfg["status_fd"], "w", buffering=1)
    status.write(json.dumps({"pid": os.getpid()}) + "\n")
    iso = _namespaces(cfg)
    iso["readonly_fs"] = False
    if iso["mount"]:
        try:
            iso["readonly_fs"] = _readonly_filesystem(cfg["workdir"])
        except OSError as exc:
            iso["mount_error"] = str(exc)
    iso["uid_dropped"] = cfg.get("uid") is not None
    status.write(json.dumps({"isolation": iso}) + "\n")
    status.flush()
    pid = os.fork()
    if pid == 0:
        status.close()
        _child(cfg, iso, cfg["results_fd"])
    os.close(cfg["results_fd"])
    _, wstatus, usage = os.wait4(pid, 0)
    exit_info = {
        "code": os.WEXITSTATUS(wstatus) if os.WIFEXITED(wstatus) else None,
        "signal": os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else None,
        "cpu_time": usage.ru_utime + usage.ru_stime,
        "max_rss_kb": usage.ru_maxrss,
    }
    status.write(json.dumps({"exit": exit_info}) + "\n")
    status.close()
    os._exit(0)


def _serve(sock_fd):
    """Fork server: every request (a config path + stdout/stderr/results/status pipe ends) becomes one
    :func:`_job` in a forked process, in its own session, so nothing is imported or started twice.
    Exits when the host closes its end of the socket."""
    import importlib.util  # noqa: F401 - warm: every test job needs these
    import linecache  # noqa: F401
    import socket

    sock = socket.socket(fileno=sock_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # jobs are reaped automatically
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 4096, 4)
        except InterruptedError:
            continue
        except OSError:
            break
        if not msg:
            break
        if len(fds) != 4:
            for fd in fds:
                os.close(fd)
            continue
        if os.fork() == 0:
            try:
                sock.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.setsid()
                out, err, results, status = fds
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(out, 1)
                os.dup2(err, 2)
                for fd in (null, out, err):
                    os.close(fd)
                with open(msg.decode()) as f:
                    cfg = json.load(f)
                cfg["results_fd"], cfg["status_fd"] = results, status
                os.environ.clear()
                os.environ.update(cfg["env"])
                os.chdir(cfg["workdir"])
                _job(cfg)
            finally:
                os._exit(96)
        for fd in fds:
            os.close(fd)


def main():
    if sys.argv[1] == "--serve":
        _serve(int(sys.argv[2]))
        return
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    _job(cfg)


if __name__ == "__main__":
    main()

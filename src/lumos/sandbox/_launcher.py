"""The in-sandbox launcher: isolation as root, a PID-1 supervisor, and the candidate and test processes.

Runs as a standalone script under ``python -I -S -B`` and imports the standard library plus its siblings
(``_isolate``, ``_shared``, ``_wire``, ``_candidate``, ``_proxies``, ``_testrun``; never lumos: the sandbox
sees no site-packages)::

    python -I -S -B _launcher.py CONFIG.json          # one job (the slow twin of the fork server)
    python -I -S -B _launcher.py --serve FD           # fork server (lumos.sandbox.forkserver)

Process tree of one job (each arrow a fork)::

    launcher (root; joins the cgroup leaf; unshares; builds the minimal root; dies with its parent
      │        and when the host's lifeline pipe closes, taking the namespace with it)
      └─ init (PID 1 of the new PID namespace; wall-clock alarm; reports exit statuses)
           ├─ candidate (fresh uid; seccomp): runs the candidate's code
           └─ runner (another fresh uid; seccomp; tests and repository modes): runs the tests, alone
                      holds the results fd, and calls into the candidate over a plain-value channel

Only the launcher and init write the status pipe, and nothing the candidate can reach is read as a
sandbox fault: ``setup_error`` comes from a child that failed *before* it ran any candidate code.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing into every sandbox
if TYPE_CHECKING:
    from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _candidate  # noqa: E402
import _isolate  # noqa: E402
import _shared  # noqa: E402
import _testrun  # noqa: E402
import _wire  # noqa: E402

_state = {"children": {}, "timeout": False, "grace": None, "pidns": False}


def _write(fd, obj):
    _wire.write_all(fd, (json.dumps(obj) + "\n").encode())


def _keep_only(keep):
    """Close every fd above 2 that is not in ``keep``."""
    lo = 3
    for fd in sorted(k for k in keep if k >= 3) + [1 << 16]:
        if fd > lo:
            os.closerange(lo, fd)
        lo = fd + 1


def _setup_child(cfg, uid, setup_w, cwd):
    """As root in a fresh child: drop everything, then tell init the set-up succeeded."""
    try:
        os.chdir(cwd)
        os.umask(0o077)
        _isolate.drop_privileges(uid, cfg["limits"], bytes.fromhex(cfg["seccomp"]) if cfg["seccomp"] else b"")
    except BaseException as exc:  # noqa: BLE001 - cannot run safely: say so before any candidate code
        _wire.write_all(setup_w, ("E" + repr(exc)[:500]).encode())
        os._exit(98)
    _wire.write_all(setup_w, b"k")
    os.close(setup_w)


def _candidate_child(cfg, fds, setup_w):
    mode = cfg["mode"]
    # split modes: the candidate keeps only its two channel ends (never the results fd or the tests)
    keep = {fds["req_r"], fds["rep_w"], setup_w} if cfg["split"] else {fds["results"], setup_w}
    _keep_only(keep)
    _setup_child(cfg, cfg["uid"], setup_w, cfg["workdir"])
    if mode == "command":
        _keep_only(set())
        argv = [a for a in cfg["command"]]
        if argv and argv[0] == "python":
            argv = [sys.executable, "-I", "-S", "-B", "-c", _testrun.COMMAND_SHIM] + argv[1:]
        try:
            os.execvpe(argv[0], argv, cfg["env"])
        except OSError as exc:
            os.write(2, (f"command failed to start: {exc}\n").encode())
            os._exit(127)
    if cfg["split"]:
        _candidate.serve_candidate(cfg["workdir"], fds["req_r"], fds["rep_w"], cfg["limits"]["per_test_time"],
                                 solution=mode == "tests")
    chan = _wire.Channel(fds["results"])
    try:
        if mode == "script":
            code = _testrun.run_script(os.path.join(cfg["workdir"], "main.py"), chan)
        else:
            code = _testrun.run_repo_inprocess(cfg["workdir"], cfg["test_files"], chan,
                                               float(cfg["limits"]["per_test_time"] or 0))
    except BaseException as exc:  # noqa: BLE001 - harness error, reported
        chan.send(harness_error=_wire.describe(exc), memory=isinstance(exc, MemoryError))
        code = 97
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    os._exit(code)


def _runner_child(cfg, fds, setup_w):
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    _keep_only({fds["req_w"], fds["rep_r"], fds["results"], fds["tests"], setup_w})
    _setup_child(cfg, cfg["runner_uid"], setup_w, "/")
    with os.fdopen(fds["tests"], encoding="utf-8") as f:
        sources = json.load(f)
    chan = _wire.Channel(fds["results"])
    run = _testrun.run_tests if cfg["mode"] == "tests" else _testrun.run_repo_tests
    try:
        run(sources, fds["req_w"], fds["rep_r"], chan, float(cfg["limits"]["per_test_time"] or 0))
    except BaseException as exc:  # noqa: BLE001 - the tests themselves are broken
        chan.send(harness_error=_wire.describe(exc))
    os._exit(0)


def _spawn(role, cfg, fds):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            if not _state["pidns"]:
                os.setpgid(0, 0)
            (_candidate_child if role == "candidate" else _runner_child)(cfg, fds, w)
        finally:
            os._exit(96)
    os.close(w)
    _state["children"][pid] = role
    return pid, r


def _kill_all():
    if _state["pidns"]:
        try:
            os.kill(-1, signal.SIGKILL)  # PID 1: every other process of the namespace
        except OSError:
            pass
        return
    for pid in list(_state["children"]):
        for fn in (os.killpg, os.kill):
            try:
                fn(pid, signal.SIGKILL)
            except OSError:
                pass


def _on_alarm(signum, frame):
    if _state["grace"] is not None:  # the tests are over and the candidate did not leave: end it
        try:
            (os.kill if _state["pidns"] else os.killpg)(_state["grace"], signal.SIGKILL)
        except OSError:
            pass
        _state["grace"] = None
        _state["after_tests"] = True
        return
    _state["timeout"] = True
    _kill_all()


def _read_setup(fd):
    data = b""
    while True:
        chunk = os.read(fd, 600)
        if not chunk:
            break
        data += chunk
    os.close(fd)
    if data == b"k":
        return None
    return data[1:].decode("utf-8", "replace") if data.startswith(b"E") else "child exited during set-up"


def _init(cfg, iso, status_fd, fds):
    """PID 1 of the sandbox: alarm, children, statuses. Never returns."""
    _isolate.prctl(_isolate.PR_SET_PDEATHSIG, signal.SIGKILL)
    _state["pidns"] = iso["pid"] and os.getpid() == 1
    if _state["pidns"] and iso["mount"]:
        try:
            _isolate.mount("proc", "/proc", "proc", _isolate.MS_NOSUID | _isolate.MS_NODEV | _isolate.MS_NOEXEC,
                           "hidepid=2")
            iso["proc"] = True
        except OSError:
            iso["proc"] = False
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(cfg["limits"]["wall_time"]))
    if cfg["split"]:
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        fds.update(req_r=req_r, req_w=req_w, rep_r=rep_r, rep_w=rep_w)
    cand, cand_setup = _spawn("candidate", cfg, fds)
    setups = {"candidate": cand_setup}
    if cfg["split"]:
        runner, setups["runner"] = _spawn("runner", cfg, fds)
        for k in ("req_r", "req_w", "rep_r", "rep_w", "tests"):
            os.close(fds[k])
    os.close(fds["results"])
    errors = {role: _read_setup(fd) for role, fd in setups.items()}
    statuses = {}
    while len(statuses) < len(_state["children"]):
        try:
            pid, wstatus, usage = os.wait4(-1, 0)
        except ChildProcessError:
            break
        role = _state["children"].get(pid)
        if role is None:
            continue  # an orphan of the candidate, reaped by PID 1
        statuses[role] = {
            "code": os.WEXITSTATUS(wstatus) if os.WIFEXITED(wstatus) else None,
            "signal": os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else None,
            "cpu_time": usage.ru_utime + usage.ru_stime, "max_rss_kb": usage.ru_maxrss,
        }
        if role == "runner" and "candidate" not in statuses and not _state["timeout"]:
            _state["grace"] = cand
            signal.setitimer(signal.ITIMER_REAL, 0.3)
    signal.setitimer(signal.ITIMER_REAL, 0)
    setup_error = next((f"{role}: {e}" for role, e in errors.items() if e), None)
    _write(status_fd, {"exit": statuses.get("candidate"), "runner": statuses.get("runner"),
                       "setup_error": setup_error, "wall_timeout": _state["timeout"],
                       "after_tests": bool(_state.get("after_tests"))})
    _kill_all()
    os._exit(0)


def _prepare(cfg):
    """The launcher's root-only steps; returns the isolation report (raises OSError on a failed step)."""
    lim = cfg["limits"]
    iso: dict[str, str | bool] = {"cgroup": "none"}
    if cfg.get("cgroup_procs"):
        _join(cfg["cgroup_procs"])
        iso["cgroup"] = cfg["cgroup_version"]
    template, _template["fd"] = _template["fd"], None
    protected = set(cfg.get("protected") or [])
    if cfg["uid"] is None or os.path.dirname(cfg["workdir"]) != _template["base"]:
        if template is not None:
            os.close(template)
        template = None
    entries = _isolate.read_tree(cfg["workdir"]) if template is not None else None
    if _early["ns"] is not None:  # a standby unshared all but the mount namespace already
        iso.update(_early["ns"])
        iso["mount"] = template is None and _isolate.unshare_mount()
    else:
        iso.update(_isolate.namespaces(cfg.get("namespaces", True), mount=template is None))
    iso["ipc_limits"] = bool(iso["ipc"]) and _isolate.ipc_limits(lim)  # needs the host's /proc
    if template is not None:
        if cfg.get("namespaces", True):
            iso["mount"], iso["template"] = _isolate.enter_template(template)
        os.close(template)
    iso["readonly_fs"] = False
    prefixes = _prefixes()
    if iso["mount"] and cfg["uid"] is not None:
        fs = "minimal root: interpreter and system directories read-only, tmpfs working directory"
        if iso.pop("template", False):  # a copy of the fork server's prepared root: add the working directory
            _isolate.template_workdir(cfg["workdir"], entries, cfg["uid"], lim, protected)
            fs += " (read-only part prepared once by the fork server)"
        else:
            _isolate.minimal_root(cfg["control"], cfg["workdir"], cfg["uid"], lim, prefixes, protected)
        iso["readonly_fs"] = True
    else:
        iso.pop("template", None)
        fs = "host filesystem (no mount namespace or not root)"
        if cfg["uid"] is not None and _isolate.expose_interpreter(prefixes):
            fs += "; interpreter re-exposed in a private mount namespace"
    iso["fs"] = fs
    iso["uid_dropped"] = cfg["uid"] is not None
    iso["seccomp"] = bool(cfg["seccomp"])
    iso["seccomp_note"] = cfg.get("seccomp_note", "")
    iso["no_new_privs"] = True
    iso["keyring"] = "blocked by seccomp" if cfg["seccomp"] else "fresh anonymous session keyring only"
    return iso


def _job(cfg):
    """One sandboxed run (the launcher's own process). Never returns."""
    status = cfg["status_fd"]
    lifeline = cfg["lifeline_fd"]
    _isolate.prctl(_isolate.PR_SET_PDEATHSIG, signal.SIGKILL)
    _write(status, {"pid": os.getpid()})
    fds = {"results": cfg["results_fd"]}
    try:
        if cfg["split"]:
            fds["tests"] = os.open(os.path.join(cfg["control"], "tests.json"), os.O_RDONLY)
        iso = _prepare(cfg)
    except BaseException as exc:  # noqa: BLE001 - the sandbox could not be set up: nothing ran
        _write(status, {"setup_error": f"launcher: {exc!r}"})
        os._exit(0)
    _write(status, {"isolation": iso})
    pid = os.fork()
    if pid == 0:
        os.close(lifeline)
        _init(cfg, iso, status, fds)
    for fd in fds.values():
        os.close(fd)
    os.close(status)
    # init alone holds the job's stdout/stderr now: the host sees them close the moment init exits,
    # not after this process has woken up and exited too
    os.dup2(0, 1)
    os.dup2(0, 2)
    _supervise(pid, lifeline, float(cfg["limits"]["wall_time"]) + 2.0)
    os._exit(0)


def _supervise(pid, lifeline, budget):
    """Wait for init; kill it when the host's lifeline closes (host died) or the budget runs out."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    import time

    end = time.monotonic() + budget
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        watch = [lifeline] + ([pidfd] if pidfd is not None else [])
        ready, _, _ = select.select(watch, [], [], min(left, 0.5 if pidfd is None else left))
        if pidfd is not None and pidfd in ready:
            break
        if lifeline in ready:
            if not os.read(lifeline, 1):
                break  # the host is gone
        if pidfd is None and os.waitpid(pid, os.WNOHANG)[0]:
            return
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _prefixes():
    return [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
            os.path.dirname(sys.executable)]


#: the fork server's prepared mount namespace (see _make_template): its fd, and the parent of the workdirs
_template: dict[str, Any] = {"fd": None, "base": None}


def _make_template(base):
    """Fork server, once: a child builds the read-only minimal root (everything but the working directory,
    whose parent ``base`` is left empty) in a mount namespace of its own; the server keeps that namespace
    open, and jobs whose working directory lies in ``base`` start from a copy of it. None when impossible
    (not root, no mount namespaces): jobs then build the whole root themselves."""
    if not base or base == "/" or os.geteuid() != 0:
        return None
    if any(_isolate.covered(d, [base]) for d in _isolate.interpreter_dirs(_prefixes())):
        return None  # each job's tmpfs on ``base`` would hide the interpreter
    import tempfile

    try:
        mnt = tempfile.mkdtemp(prefix=f"{_shared.CONTROL_PREFIX}{os.getppid()}-tpl-")
    except OSError:
        return None
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(hold_w)
            _isolate.template_root(mnt, _prefixes(), base)
            os.write(ready_w, b"k")
            os.read(hold_r, 1)  # keep the namespace alive until the server holds it (EOF)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(hold_r)
    fd = None
    try:
        if os.read(ready_r, 1) == b"k":
            fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        fd = None
    finally:
        os.close(ready_r)
        os.close(hold_w)
        os.waitpid(pid, 0)
        try:
            os.rmdir(mnt)
        except OSError:
            pass
    return fd


def _join(paths):
    """Move this process into the job's cgroup leaf (each v1 hierarchy, or the v2 leaf), once per path."""
    for path in paths:
        if path not in _joined:
            with open(path, "w") as f:
                f.write(str(os.getpid()))
            _joined.add(path)


_joined = set()  # cgroup.procs paths this process already joined (a standby of the fork server did it early)
#: the namespaces a standby unshared before its job came (all but the mount namespace)
_early: dict[str, dict[str, bool] | None] = {"ns": None}


def _run_request(path, fds):
    """In a forked child of the fork server: take over the request's fds and run its job. Never returns."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        if os.getpgid(0) != os.getpid():
            os.setsid()
        out, err, results, status, lifeline = fds
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in (null, out, err):
            os.close(fd)
        with open(path.decode()) as f:
            cfg = json.load(f)
        cfg.update(results_fd=results, status_fd=status, lifeline_fd=lifeline)
        os.environ.clear()
        os.environ.update(cfg["env"])
        os.chdir("/")
        _job(cfg)
    finally:
        os._exit(96)


def _standby(conn, procs):
    """A fork of the server that joins a job's cgroup leaf *before* the job is known (joining waits for an
    RCU grace period, 10-30 ms on cgroup v1), then waits for that job's request. Never returns."""
    import socket

    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        _isolate.prctl(_isolate.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:
            os._exit(0)  # the server is already gone
        try:
            _join(procs)
        except OSError:
            pass  # _prepare joins again and reports the failure as a set-up error
        # creating a network namespace costs milliseconds: do it now too. Only namespaced jobs get a leaf,
        # hence a standby; the mount namespace waits for the job (prepared root or not).
        _early["ns"] = _isolate.namespaces(True, mount=False)
        try:
            msg, fds, _, _ = socket.recv_fds(conn, 4096, 5)
        except OSError:
            os._exit(0)
        conn.close()
        if not msg or len(fds) != 5:
            os._exit(0)  # the server closed the standby: nothing ran
        _run_request(msg, fds)
    finally:
        os._exit(96)


def _fork_standby(sock, standbys, msg):
    """``S LEAF\0PROCS_JSON``: fork a standby that joins the cgroup leaf LEAF (see :func:`_standby`); it replaces
    an earlier standby of that leaf."""
    import socket

    name, _, procs = msg[1:].partition(b"\0")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if os.fork() == 0:
        sock.close()
        ours.close()
        for other in standbys.values():
            other.close()
        _standby(theirs, json.loads(procs))
    theirs.close()
    old = standbys.pop(name, None)
    if old is not None:
        old.close()
    standbys[name] = ours


def _hand_to_standby(standbys, name, path, fds):
    """Pass the job (its config ``path`` and five fds) to the standby of leaf ``name``; False when there is none
    or it died (the caller then forks a fresh job)."""
    import socket

    peer = standbys.pop(name, None) if name else None
    if peer is None:
        return False
    try:
        socket.send_fds(peer, [path], fds)
        handed = True
    except OSError:  # the standby died
        handed = False
    peer.close()
    return handed


def _serve(sock_fd):
    """Fork server: every request (a config path + stdout/stderr/results/status/lifeline fds) becomes one
    :func:`_job` in a forked process, in its own session, so nothing is imported or started twice.

    Messages: ``CONFIG_PATH[\0LEAF]`` with the job's five fds; ``S LEAF\0PROCS_JSON`` without fds forks a
    standby that joins the cgroup leaf ``LEAF`` ahead of time (see :func:`_standby`): the job naming that
    leaf is handed to it, any other job is forked fresh and joins its leaf itself. Exits when the host
    closes its end of the socket."""
    import importlib.util  # noqa: F401 - warm: every job needs these
    import linecache  # noqa: F401
    import shutil  # noqa: F401
    import socket

    sock = socket.socket(fileno=sock_fd)
    base = sys.argv[3] if len(sys.argv) > 3 else None
    _template.update(fd=_make_template(base), base=base)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # jobs are reaped automatically
    standbys = {}  # leaf name -> socket to the standby that joined it
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 4096, 5)
        except InterruptedError:
            continue
        except OSError:
            break
        if not msg:
            break
        if msg.startswith(b"S") and not fds:
            _fork_standby(sock, standbys, msg)
            continue
        if len(fds) != 5:
            for fd in fds:
                os.close(fd)
            continue
        path, _, name = msg.partition(b"\0")
        if _hand_to_standby(standbys, name, path, fds):
            for fd in fds:
                os.close(fd)
            continue
        if os.fork() == 0:
            sock.close()
            for other in standbys.values():
                other.close()
            _run_request(path, fds)
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

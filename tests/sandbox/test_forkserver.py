"""The fork server (fast path) against a freshly spawned launcher per job (the reference twin)."""

from __future__ import annotations

import ast
import os
import sys

import pytest

from lumos.sandbox import SandboxJob, SandboxLimits, SandboxPool, run_job
from lumos.sandbox.forkserver import ForkServer

LIM = SandboxLimits(wall_time=1.5, cpu_time=1.0, memory_mb=128, max_processes=8)
TESTS = "def test_pos():\n    assert add(2, 3) == 5\n\ndef test_neg():\n    assert add(-2, -3) == -5\n"
JOBS = [
    SandboxJob("tests", source="def add(a, b):\n    return a + b\n", tests=TESTS, limits=LIM),
    SandboxJob("tests", source="def add(a, b):\n    return abs(a) + abs(b)\n", tests=TESTS, limits=LIM),
    SandboxJob("tests", source="import os\nos._exit(3)\n", tests=TESTS, limits=LIM),
    SandboxJob("script", source="import os\nprint(sorted(os.environ), os.getuid() == 0)\n", limits=LIM),
    SandboxJob("script", source="x = bytearray(2 ** 30)\n", limits=LIM),
    SandboxJob("script", source="while True:\n    pass\n", limits=LIM),
    SandboxJob("script", source="import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n", limits=LIM),
    SandboxJob("command", files={"m.py": "print('hi')\n"}, command=["python", "m.py"], limits=LIM),
]


def _key(v):
    return (v.exit_reason, v.passed, v.failed, v.stdout, v.returncode, v.network_isolated, v.pid_namespace,
            v.readonly_fs, v.uid_dropped)


def test_fork_server_matches_spawned_launcher():
    for job in JOBS:
        fast, slow = run_job(job), run_job(job, fork_server=False)
        assert _key(fast) == _key(slow), job.source or job.command


def test_dead_fork_server_is_replaced():
    run_job(JOBS[0])
    server = ForkServer.shared()
    server.proc.kill()
    server.proc.wait()
    v = run_job(JOBS[0])
    assert v.all_passed and ForkServer.shared() is not server


_PROBE = ("import os\ncwd = os.getcwd()\nprint(os.path.dirname(cwd), os.path.basename(cwd), sorted(os.listdir(os.path.dirname(cwd))))\n"
          "for path in ('/x', os.path.dirname(cwd) + '/x', '/usr/x', '/dev/x'):\n    try:\n"
          "        open(path, 'w')\n        print('wrote', path)\n    except OSError:\n        pass\n"
          "open('mine', 'w').write('ok')\nprint(open('mine').read())\n")


def _interpreter_entries(parent):
    """Names in ``parent`` that lead to the interpreter's directories (when they lie below it)."""
    out = set()
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))):
        rel = os.path.relpath(os.path.realpath(p), parent)
        if not rel.startswith(".."):
            out.add(rel.split(os.sep)[0])
    return out


def _full_isolation():
    v = run_job(SandboxJob("script", source="pass\n", limits=LIM))
    if not (v.uid_dropped and v.readonly_fs and v.pid_namespace):
        pytest.skip("needs root with namespaces (the verdict reports the isolation is not in force)")


@pytest.mark.isolation
def test_prepared_root_matches_built_root(tmp_path):
    """Jobs in the fork server's copy of the prepared root see what a root built per job shows: only their
    own working directory in its parent, nothing writable outside it, even with others running at once."""
    _full_isolation()
    with SandboxPool(workers=2) as pool:
        fast = pool.map([SandboxJob("script", source=_PROBE, limits=LIM)] * 4)
    slow = [run_job(SandboxJob("script", source=_PROBE, limits=LIM), fork_server=False),
            run_job(SandboxJob("script", source=_PROBE, limits=LIM), base_dir=tmp_path)]  # no template there
    for v in fast + slow:
        first, rest = v.stdout.split("\n", 1)
        parent, cwd, listing = first.split(" ", 2)
        assert v.exit_reason == "ok" and rest == "ok\n", (v.stdout, v.stderr)
        # the parent holds the working directory, plus the interpreter's own directory when the checkout or its
        # venv lies there (the root binds the interpreter's prefixes), never another job's directory
        assert set(ast.literal_eval(listing)) <= {cwd} | _interpreter_entries(parent) and cwd in listing, v.stdout
    # no prepared root where the interpreter lies in the working directories' parent (a job's tmpfs there would
    # hide it): e.g. a checkout with its venv under /tmp
    prepared = not _interpreter_entries(fast[0].stdout.split(" ", 1)[0])
    assert all(("prepared once" in v.isolation["fs"]) == prepared for v in fast)
    assert not any("prepared once" in v.isolation["fs"] for v in slow)


@pytest.mark.isolation
def test_standby_leaf_takes_the_jobs_caps():
    """A job handed to a standby (which joined its cgroup leaf before the job was known) runs under that
    job's own caps, not the ones the leaf was made with."""
    _full_isolation()
    if run_job(SandboxJob("script", source="pass\n", limits=LIM)).isolation.get("cgroup") == "none":
        pytest.skip("no cgroup leaf on this host")
    server = ForkServer.shared()
    assert server.standbys, "a fork-server job leaves a standby behind for the next one"
    waiting = server.standbys[0]
    lim = SandboxLimits(wall_time=8.0, cpu_time=4.0, memory_mb=256, total_memory_mb=160, max_processes=16)
    hog = ("import os, time\npids = []\nfor _ in range(3):\n    pid = os.fork()\n    if pid == 0:\n"
           "        b = bytearray(100 << 20)\n        for i in range(0, len(b), 4096):\n            b[i] = 1\n"
           "        time.sleep(0.5)\n        os._exit(0)\n    pids.append(pid)\n"
           "for p in pids:\n    os.waitpid(p, 0)\nprint('survived')\n")
    v = run_job(SandboxJob("script", source=hog, limits=lim))
    assert waiting not in server.standbys and waiting.limits[0] == 160 << 20
    assert v.exit_reason == "memory" and 0 < v.memory_peak_kb <= 161 * 1024, (v.exit_reason, v.memory_peak_kb)
    honest = run_job(SandboxJob("script", source=hog.replace("range(3)", "range(1)"), limits=lim))
    assert honest.exit_reason == "ok" and "survived" in honest.stdout

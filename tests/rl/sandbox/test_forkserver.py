"""The fork server (fast path) against a freshly spawned launcher per job (the reference twin)."""

from __future__ import annotations

from lumos.rl.sandbox import SandboxJob, SandboxLimits, run_job
from lumos.rl.sandbox.forkserver import ForkServer

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

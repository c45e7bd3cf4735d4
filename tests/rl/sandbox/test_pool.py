import threading
import time

import pytest

from lumos.core.errors import LumosError
from lumos.rl.sandbox import SandboxJob, SandboxLimits, SandboxPool, Verdict, run_job
from lumos.rl.sandbox import pool as pool_mod

FAST = SandboxLimits(wall_time=3.0, cpu_time=2.0)


def test_results_in_submission_order_and_same_as_sequential():
    # later jobs finish first: job i sleeps (n - i) * 40 ms
    n = 6
    jobs = [SandboxJob("script", source=f"import time\ntime.sleep({(n - i) * 0.04})\nprint({i})\n", limits=FAST)
            for i in range(n)]
    with SandboxPool(workers=2) as pool:
        verdicts = pool.map(jobs)
    assert [v.stdout.strip() for v in verdicts] == [str(i) for i in range(n)]
    sequential = [run_job(j) for j in jobs[:2]]  # oracle: the pool is only a scheduler
    assert [(v.exit_reason, v.stdout) for v in sequential] == [(v.exit_reason, v.stdout) for v in verdicts[:2]]


def test_pool_survives_crashing_jobs():
    jobs = [
        SandboxJob("script", source="print('a')\n", limits=FAST),
        SandboxJob("script", source="import ctypes\nctypes.string_at(0)\n", limits=FAST),  # segfault
        SandboxJob("repo", files={"../../escape.py": "x"}, limits=FAST),  # host-side error
        SandboxJob("script", source="print('b')\n", limits=FAST),
    ]
    with SandboxPool(workers=2) as pool:
        v = pool.map(jobs)
    assert [x.exit_reason for x in v] == ["ok", "crash", "error", "ok"]
    assert v[0].stdout == "a\n" and v[3].stdout == "b\n" and "inside the working directory" in v[2].stderr


def test_back_pressure(monkeypatch):
    gate = threading.Event()
    started: list[int] = []

    def fake_run(job, base_dir=None):
        gate.wait(10)
        return Verdict("ok", stdout=job.source)

    monkeypatch.setattr(pool_mod, "run_job", fake_run)
    pool = SandboxPool(workers=1, max_pending=2)
    futures = []

    def producer():
        for i in range(4):
            futures.append(pool.submit(SandboxJob("script", source=str(i))))
            started.append(i)

    t = threading.Thread(target=producer)
    t.start()
    time.sleep(0.3)
    assert started == [0, 1]  # the third submit blocks until a slot frees
    gate.set()
    t.join(10)
    pool.close()
    assert [f.result().stdout for f in futures] == ["0", "1", "2", "3"]


def test_bad_pool_arguments():
    with pytest.raises(LumosError, match="workers"):
        SandboxPool(workers=0)
    with pytest.raises(LumosError, match="max_pending"):
        SandboxPool(workers=4, max_pending=2)

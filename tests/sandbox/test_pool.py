import threading

import pytest

from lumos.core.errors import LumosError
from lumos.sandbox import SandboxJob, SandboxLimits, SandboxPool, Verdict, run_job
from lumos.sandbox import pool as pool_mod

FAST = SandboxLimits(wall_time=3.0, cpu_time=2.0)


def test_results_in_submission_order_and_same_as_sequential(monkeypatch):
    # later jobs finish first, by construction: job i waits until job i + 1 has finished
    n = 4
    finished = [threading.Event() for _ in range(n)]
    order: list[int] = []

    def reversed_run(job, base_dir=None):
        i = int(job.source)
        if i + 1 < n:
            assert finished[i + 1].wait(10)
        order.append(i)
        finished[i].set()
        return Verdict("ok", stdout=job.source)

    monkeypatch.setattr(pool_mod, "run_job", reversed_run)
    with SandboxPool(workers=n) as pool:
        verdicts = pool.map([SandboxJob("script", source=str(i)) for i in range(n)])
    assert order == [3, 2, 1, 0] and [v.stdout for v in verdicts] == ["0", "1", "2", "3"]
    monkeypatch.undo()
    jobs = [SandboxJob("script", source=f"print({i})\n", limits=FAST) for i in range(3)]
    with SandboxPool(workers=2) as pool:
        verdicts = pool.map(jobs)
    sequential = [run_job(j) for j in jobs]  # oracle: the pool is only a scheduler
    assert [(v.exit_reason, v.stdout) for v in sequential] == [(v.exit_reason, v.stdout) for v in verdicts]
    assert [v.stdout for v in verdicts] == ["0\n", "1\n", "2\n"]


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


class _WatchedSlots(threading.BoundedSemaphore):
    """The pool's slot semaphore, announcing each blocking acquire before it waits."""

    def __init__(self, value: int):
        super().__init__(value)
        self.waiting = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if blocking and not super().acquire(blocking=False):
            self.waiting.set()  # no free slot: the caller is about to block
            return super().acquire(True, timeout)
        return True if blocking else super().acquire(False)


def test_back_pressure(monkeypatch):
    gate = threading.Event()
    started: list[int] = []

    def fake_run(job, base_dir=None):
        gate.wait(10)
        return Verdict("ok", stdout=job.source)

    monkeypatch.setattr(pool_mod, "run_job", fake_run)
    pool = SandboxPool(workers=1, max_pending=2)
    slots = pool._slots = _WatchedSlots(2)
    futures = []

    def producer():
        for i in range(4):
            futures.append(pool.submit(SandboxJob("script", source=str(i))))
            started.append(i)

    t = threading.Thread(target=producer)
    t.start()
    assert slots.waiting.wait(10)  # the third submit found both slots taken and blocks
    assert started == [0, 1] and t.is_alive() and not any(f.done() for f in futures)
    gate.set()
    t.join(10)
    pool.close()
    assert [f.result().stdout for f in futures] == ["0", "1", "2", "3"]


def test_bad_pool_arguments():
    with pytest.raises(LumosError, match="workers"):
        SandboxPool(workers=0)
    with pytest.raises(LumosError, match="max_pending"):
        SandboxPool(workers=4, max_pending=2)

"""Many sandboxes at once: bounded by cores, back-pressure on submission, results in submission order.

Threads only drive subprocesses (each sandbox is its own process tree), so the GIL is not a bottleneck.
A job that fails on the host side (an exception while preparing it) yields a ``Verdict`` with
``exit_reason="error"`` instead of poisoning the pool; a job whose sandboxed code crashes is an ordinary
``crash`` verdict.

Example::

    >>> from lumos.sandbox import SandboxJob, SandboxPool
    >>> with SandboxPool(workers=2) as pool:
    ...     verdicts = pool.map([SandboxJob("script", source="print(1)")] * 4)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from lumos.core.validation import check_int, check_positive_int
from lumos.sandbox.runner import SandboxJob, Verdict, run_job

__all__ = ["SandboxPool"]


class SandboxPool:
    """Run :class:`SandboxJob` s concurrently.

    Args:
        workers: concurrent sandboxes (default: the number of CPU cores available to this process).
        max_pending: jobs submitted but not finished before :meth:`submit` blocks (default ``2 * workers``).
        base_dir: where working directories are created (default: the system temp directory).
    """

    def __init__(self, workers: int | None = None, max_pending: int | None = None,
                 base_dir: str | Path | None = None):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = cores if workers is None else workers
        check_positive_int(workers, "workers", owner="SandboxPool")
        max_pending = 2 * workers if max_pending is None else max_pending
        check_int(max_pending, "max_pending", workers, owner="SandboxPool")
        self.workers, self.max_pending, self.base_dir = workers, max_pending, base_dir
        self._slots = threading.BoundedSemaphore(max_pending)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lumos-sandbox")

    def _run(self, job: SandboxJob) -> Verdict:
        try:
            return run_job(job, base_dir=self.base_dir)
        except Exception as exc:  # noqa: BLE001 - one bad job must not take the pool down
            return Verdict(exit_reason="error", stderr=f"{type(exc).__name__}: {exc}",
                           failed=[], errors={"job": str(exc)})

    def submit(self, job: SandboxJob) -> Future:
        """Queue ``job``; blocks while ``max_pending`` jobs are unfinished (back-pressure)."""
        self._slots.acquire()
        try:
            fut = self._executor.submit(self._run, job)
        except BaseException:
            self._slots.release()
            raise
        fut.add_done_callback(lambda _: self._slots.release())
        return fut

    def map(self, jobs: Iterable[SandboxJob]) -> list[Verdict]:
        """Verdicts of ``jobs`` in submission order (streams: at most ``max_pending`` in flight)."""
        futures = [self.submit(job) for job in jobs]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Sandbox throughput and start-up overhead.

Measures, side by side in one run on this machine:

- ``start``: wall time of one trivial sandboxed run (``pass``) through the fork server and through a freshly
  spawned launcher (with and without namespaces), vs a bare ``python -I -S -c pass`` subprocess, of one
  tests-mode job (8 hidden tests: candidate and test runner processes, one call each) and of one
  repository-mode job (the built-in ``stats`` repair repository: two test functions);
- ``trivial``: sandboxed evaluations per second of trivial jobs with the pool on 1 and 2 workers;
- ``suite``: the same for test-suite jobs (a function-synthesis solution against 8 hidden tests).

Usage: ``python benchmarks/sandbox.py [--quick] [--json PATH]``. Timings are noisy on a shared machine;
compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lumos.rl.tasks.code import FunctionTask
from lumos.rl.tasks.code.problems import REPAIR_REPOS
from lumos.sandbox import SandboxJob, SandboxPool, probe_isolation, run_job


def _median_walls(fns: dict, reps: int) -> dict[str, float]:
    """Median wall time of each callable, timed in interleaved rounds (one call of each per round), so that
    load from other processes on a shared machine falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_start(reps: int) -> list[dict]:
    job, bare_job = SandboxJob("script", source="pass\n"), SandboxJob("script", source="pass\n", namespaces=False)
    suite = _suite_jobs(1)[0]
    repo = SandboxJob("repo", files=REPAIR_REPOS[0]["files"], test_files=REPAIR_REPOS[0]["test_files"])
    for warm in (job, suite, repo):  # start the fork server (and its standby) outside the timing
        run_job(warm)
    timings = {
        "bare python -I -S subprocess": lambda: subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], check=True),
        "spawned launcher, no namespaces": lambda: run_job(bare_job, fork_server=False),
        "spawned launcher, full isolation": lambda: run_job(job, fork_server=False),
        "fork server, full isolation": lambda: run_job(job),
        "fork server, 8-test suite job": lambda: run_job(suite),
        "fork server, repository job": lambda: run_job(repo),
    }
    rows, bare = [], None
    for variant, sec in _median_walls(timings, reps).items():
        bare = bare or sec
        rows.append({"case": "start", "variant": variant, "seconds": sec, "ratio_vs_bare": sec / bare})
    return rows


def _suite_jobs(n: int) -> list[SandboxJob]:
    task = FunctionTask(n_tests=8)
    problems = task.generate(n, seed=0)
    return [SandboxJob("tests", source=p.answer, tests=p.meta["tests"]) for p in problems]


def bench_throughput(n: int) -> list[dict]:
    rows = []
    cases = {"trivial": [SandboxJob("script", source="pass\n") for _ in range(n)], "suite": _suite_jobs(n)}
    for case, jobs in cases.items():
        base = None
        for workers in (1, 2):
            with SandboxPool(workers=workers) as pool:
                pool.map(jobs[:2])  # warm-up
                t0 = time.perf_counter()
                verdicts = pool.map(jobs)
                dt = time.perf_counter() - t0
            ok = sum(v.exit_reason == "ok" and (case == "trivial" or v.all_passed) for v in verdicts)
            rate = len(jobs) / dt
            base = base or rate
            rows.append({"case": case, "variant": f"pool, {workers} worker(s)", "jobs": len(jobs), "ok": ok,
                         "seconds": dt, "evals_per_s": rate, "speedup_vs_1_worker": rate / base})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    args = ap.parse_args(argv)
    reps, n = (3, 6) if args.quick else (15, 60)
    iso = probe_isolation()
    rows = bench_start(reps) + bench_throughput(n)
    for row in rows:
        row.update(network_isolated=iso.network, pid_namespace=iso.pid_namespace, readonly_fs=iso.readonly_fs,
                   uid_dropped=iso.uid_dropped)
    print(f"{'case':8} {'variant':34} {'seconds':>9} {'evals/s':>8} {'ratio':>7}")
    for r in rows:
        ratio = r.get("ratio_vs_bare", r.get("speedup_vs_1_worker"))
        rate = f"{r['evals_per_s']:.1f}" if "evals_per_s" in r else "-"
        print(f"{r['case']:8} {r['variant']:34} {r['seconds']:9.4f} {rate:>8} {ratio:7.2f}")
    print(f"isolation: network={iso.network} pid_namespace={iso.pid_namespace} readonly_fs={iso.readonly_fs} "
          f"uid_dropped={iso.uid_dropped}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

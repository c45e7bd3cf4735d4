


def test_sandbox_benchmark_quick(run_benchmark):
    rows, proc = run_benchmark("sandbox", timeout=120)
    cases = {(r["case"], r["variant"]) for r in rows}
    assert ("start", "fork server, full isolation") in cases and ("start", "spawned launcher, full isolation") in cases
    assert ("start", "fork server, repository job") in cases
    assert ("suite", "pool, 2 worker(s)") in cases and ("trivial", "pool, 1 worker(s)") in cases
    for r in rows:
        assert r["seconds"] > 0
        if "jobs" in r:
            assert r["ok"] == r["jobs"] and r["evals_per_s"] > 0

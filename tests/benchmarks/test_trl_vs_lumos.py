import pytest


@pytest.mark.slow
def test_trl_vs_lumos_benchmark_quick(run_benchmark):
    pytest.importorskip("trl")
    pytest.importorskip("datasets")
    rows, proc = run_benchmark("trl_vs_lumos", "--steps", "1", timeout=900)
    assert [r["trainer"].split()[0] for r in rows] == ["TRL", "lumos"]
    for r in rows:
        assert r["user_lines"] > 5 and r["seconds_per_step"] > 0 and r["steps_timed"] == 1 and r["min_s"] <= r["max_s"]
    assert "lumos / TRL seconds per step" in proc.stdout

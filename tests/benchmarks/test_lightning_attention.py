
import pytest


@pytest.mark.slow
def test_lightning_benchmark_quick(run_benchmark):
    result, proc = run_benchmark("lightning_attention", "--threads", "2")
    assert result["matmul_gflops"] > 0
    rows = result["rows"]
    keys = {"impl", "mode", "B", "H", "D", "L", "ms", "peak_mem_mb", "gflops"}
    assert all(keys <= set(r) for r in rows)
    seen = {(r["impl"], r["mode"], r["L"]) for r in rows}
    for impl in ("lumos_chunked", "transformers_loop", "sdpa_causal", "naive"):
        for mode in ("fwd", "fwd+bwd"):
            assert (impl, mode, 512) in seen, (impl, mode)
    for r in rows:
        assert r["ms"] > 0 and r["gflops"] > 0
        if r["impl"] == "lumos_chunked":
            assert r["peak_mem_mb"] is not None and r["peak_mem_mb"] >= 0
    assert {c["check"].split(":")[0] for c in result["checks"]} >= {"fwd L=512", "fwd+bwd peak memory L=512 / L=256 <= 2.25"}
    assert "matmul peak" in proc.stdout and "lumos_chunked" in proc.stdout

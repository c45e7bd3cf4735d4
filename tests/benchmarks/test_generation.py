


def test_generation_benchmark_quick(run_benchmark):
    data, proc = run_benchmark("generation")
    rows, summary = data["rows"], data["summary"]
    keys = {(r["config"], r["impl"], r["context"]) for r in rows}
    for ctx in (64, 256):
        for impl in ("lumos", "lumos-compiled", "transformers"):
            assert ("hybrid-7:1", impl, ctx) in keys
        assert ("all-lightning", "lumos", ctx) in keys and ("all-lightning", "lumos-compiled", ctx) in keys
    for r in rows:
        assert r["prefill_s"] > 0 and r["decode_ms_per_token"] > 0 and r["decode_tokens_per_s"] > 0
    assert summary["logits_max_abs_diff_vs_transformers"] < 1e-4  # same weights in both libraries
    assert {"decode_speedup_at_256 (compiled)", "decode_speedup_at_256 (eager)", "prefill_speedup_at_256",
            "all_lightning_decode_ratio_256_vs_64 (compiled)", "first_compiled_step_s (compile)"} <= set(summary)
    assert "| config | impl |" in proc.stdout

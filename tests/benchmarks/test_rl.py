


def test_rl_benchmark_quick(run_benchmark):
    rows, proc = run_benchmark("rl", "--threads", "1")
    rollout = [r for r in rows if r["bench"] == "rollout"]
    assert [r["gen_length"] for r in rollout] == [32, 64]
    for r in rollout:
        assert r["lumos_tok_s"] > 0 and r["transformers_tok_s"] > 0 and r["speedup"] > 0
        assert r["lumos_compiled_tok_s"] > 0 and r["speedup_compiled"] > 0 and r["compile_s"] > 0
        assert r["max_logit_diff"] < 1e-4            # the same weights in both libraries
    steps = {r["phase"]: r for r in rows if r["bench"] == "rl_step"}
    assert set(steps) == {"rollout", "old_logp", "update"}
    assert abs(sum(r["share"] for r in steps.values()) - 1) < 1e-9
    assert "speedup" in proc.stdout and "RL step phase" in proc.stdout




def test_distributed_benchmark_quick(run_benchmark):
    rows, proc = run_benchmark("distributed", timeout=600)
    train = {(r["variant"], r["world"]): r for r in rows if r["bench"] == "train"}
    assert set(train) == {("fsdp", 1), ("fsdp", 2), ("fsdp+ep", 2)}
    for r in train.values():
        assert r["sft_tokens_per_s"] > 0 and r["rl_tokens_per_s"] > 0 and r["gather_s"] > 0
    # FSDP2 halves the parameter + optimizer bytes a rank holds; only expert parallelism moves tokens
    assert train[("fsdp", 2)]["param_optim_bytes_max_rank"] <= 0.55 * train[("fsdp", 1)]["param_optim_bytes_max_rank"]
    assert train[("fsdp+ep", 2)]["a2a_bytes_per_layer"] > 0 and train[("fsdp", 2)]["a2a_bytes_per_layer"] == 0
    load = {r["world"]: r for r in rows if r["bench"] == "load"}
    assert load[1]["local_fraction"] == 1.0 and load[2]["local_fraction"] <= 0.6
    assert load[2]["read_bytes_max_rank"] <= 0.6 * load[2]["unsharded_param_bytes"]
    assert "## Sharded loading" in proc.stdout

"""benchmarks/valuation.py --quick runs and writes well-formed JSON rows (no timing assertions)."""

import math


def test_valuation_benchmark_quick(run_benchmark):
    rows, proc = run_benchmark("valuation")
    sections = {r["section"] for r in rows}
    assert sections == {"first_call", "overhead", "digits", "gaussian", "selection"}
    first = [r for r in rows if r["section"] == "first_call"]
    assert first and all(r["first_fit_s"] > 0 and r["warm_fit_s"] > 0 for r in first)
    over = [r for r in rows if r["section"] == "overhead"]
    assert {r["method"] for r in over} == {"plain", "chg in-run (watch)", "chg extra pass (update)"}
    assert all(r["epoch_seconds"] > 0 for r in over)
    digits = {r["method"]: r for r in rows if r["section"] == "digits"}
    assert {"chg", "chg (full)", "chg (valid α)", "knn", "tmc", "oob", "loss", "el2n", "grand", "forgetting", "random"} <= set(digits)
    for r in digits.values():
        assert 0.0 <= r["f1"] <= 1.0 and 0.0 <= r["auc"] <= 1.0 and r["seconds"] >= 0
        assert r["n_train"] == 200 and r["n_noisy"] == 20
        assert not math.isnan(r["acc_remove_low_10pct"])
    assert "permutations" in digits["tmc"]["note"]
    sel = [r for r in rows if r["section"] == "selection"]
    assert {(r["setting"], r["method"]) for r in sel} == {(s, m) for s in ("clean", "noise30", "imbalance")
                                                          for m in ("chg", "loss", "random")}
    assert "chg" in proc.stdout and "AUC" not in proc.stderr

"""lumos.studies.rl_study_stats: the tuning choice, bracketing, the comparisons and the paired bootstrap on
hand-made run histories."""

from __future__ import annotations

import pytest

from lumos.studies.rl_study import StudyConfig
from lumos.studies.rl_study_stats import choose, paired_bootstrap, score, summarise


def _hist(scores, kl=0.01, steps=4):
    """A fake run history: eval_accuracy at steps 2 and 4 from ``scores``, constant approx_kl."""
    h = [{"step": 0, "eval_accuracy": 0.1, "fork_prob": 0.05, "compute_flops": 0.0}]
    for s in range(1, steps + 1):
        row = {"step": s, "approx_kl": kl, "optimizer_steps": 1, "compute_flops": 1e6 * s}
        if s % 2 == 0:
            row.update(eval_accuracy=scores[s // 2 - 1], fork_prob=0.1)
        h.append(row)
    return h


def test_choice_on_tuning_seeds_edges_and_paired_bootstrap():
    cfg = StudyConfig(algos=("cispo", "dapo"), updates=(4,), tune_seeds=(10,), eval_seeds=(0, 1, 2), steps=4,
                      eval_every=2, last_k=2, lr=2e-4, lr_grid={"cispo": (1e-4, 2e-4, 4e-4), "dapo": (1e-4, 2e-4)})
    # score = mean of the last 2 evaluations
    assert score(_hist([0.2, 0.4]), 2) == pytest.approx(0.3) and score(_hist([0.2, 0.4]), 1) == 0.4
    runs = {}
    tune = {("cispo", 1e-4): 0.2, ("cispo", 2e-4): 0.5, ("cispo", 4e-4): 0.3, ("dapo", 1e-4): 0.1, ("dapo", 2e-4): 0.4}
    for (arm, lr), v in tune.items():
        eps = 4.0 if arm == "cispo" else None
        runs[(4, arm, lr, eps, 10)] = _hist([v, v], kl=lr * 100)
        for s in (0, 1, 2):       # evaluation seeds: the tuned cispo point is 0.1 above dapo's at every seed
            runs[(4, arm, lr, eps, s)] = _hist([v + 0.01 * s, v + 0.01 * s], kl=lr * 100)
    c = choose(runs, cfg, 4, "cispo")
    assert (c["lr"], c["eps_high"]) == (2e-4, 4.0) and c["bracketed"]
    d = choose(runs, cfg, 4, "dapo")
    assert d["lr"] == 2e-4 and not d["bracketed"] and "high edge" in d["note"]
    tables = summarise(runs, cfg)
    tuned = [p for p in tables["paired"] if p["comparison"] == "tuned lr"]
    assert tuned[0]["Δ accuracy"] == "+0.100" and tuned[0]["verdict"] == "cispo higher"
    assert any(p["comparison"].startswith("matched lr") for p in tables["paired"])
    assert any(p["comparison"].startswith("matched KL") for p in tables["paired"])
    assert sum(r["chosen"].startswith("yes") for r in tables["tuning"]) == 2
    # the bootstrap interval of constant differences is that constant; mixed signs give a tie
    assert paired_bootstrap([0.1, 0.1, 0.1]) == pytest.approx((0.1, 0.1, 0.1))
    m, lo, hi = paired_bootstrap([0.2, -0.3, 0.1, -0.1], seed=0)
    assert lo < 0 < hi and m == pytest.approx(-0.025)




def test_without_tuning_seeds_a_shared_point_equal_to_the_matched_lr_is_reported_once():
    cfg = StudyConfig(algos=("cispo", "dapo"), updates=(4,), tune_seeds=(), eval_seeds=(0, 1), steps=4,
                      eval_every=2, last_k=2, lr=2e-4, lr_grid={})
    runs = {(4, arm, 2e-4, 4.0 if arm == "cispo" else None, s): _hist([0.2 + s / 10, 0.3]) for arm in cfg.algos
            for s in (0, 1)}
    labels = [p["comparison"] for p in summarise(runs, cfg)["paired"]]
    assert labels == ["matched lr 0.0002"]

"""lumos.studies.rl_study: the fork-token probes against hand-derived values, and the quick study end to end."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from lumos.cli.main import main
from lumos.core.errors import LumosError
from lumos.core.io import read_jsonl
from lumos.models import tiny_hybrid
from lumos.models.tokenizer import ByteTokenizer
from lumos.rl.config import RLConfig
from lumos.rl.objectives import get_loss
from lumos.rl.policy import make_policy
from lumos.rl.tasks import get_task
from lumos.rl.tasks.base import Problem
from lumos.studies.rl_study import ForkClipProbe, StudyConfig, fork_probability

FORK = ord("?")


def _probe(algo):
    cfg = RLConfig(algo=algo)
    return ForkClipProbe(SimpleNamespace(loss_fn=get_loss(algo), cfg=cfg, step=0), FORK)


def _batch(ratio, adv):
    # one response "5?" + a token after it; only the fork token (position 1) has ratio ≠ 1
    ids = torch.tensor([[ord("5"), FORK, ord("3")]])
    old = torch.log(torch.tensor([[0.5, 0.04, 0.5]]))
    logp = old + torch.log(torch.tensor([[1.0, ratio, 1.0]]))
    return ids, logp, old, torch.tensor([adv]), torch.ones(1, 3)


@pytest.mark.parametrize("algo, ratio, adv, clipped, removed", [
    ("dapo", 2.0, 1.0, 1, 1.0),         # r = 2 > 1.28 with Â > 0: PPO-clip's gradient is zero
    ("grpo", 2.0, 1.0, 1, 1.0),         # r = 2 > 1.2
    ("dapo", 1.2, 1.0, 0, 0.0),         # inside the trust region
    ("dapo", 2.0, -1.0, 0, 0.0),        # Â < 0: min(r·Â, clip·Â) takes r·Â, the gradient stays
    ("cispo", 2.0, 1.0, 0, 0.0),        # below the cap 1 + 4
    ("cispo", 6.0, 1.0, 1, 1 / 6),      # weight capped at 5 instead of 6: 1/6 of the gradient is lost
])
def test_fork_clip_probe_hand_derived(algo, ratio, adv, clipped, removed):
    out = _probe(algo)(*_batch(ratio, adv))
    assert out["fork_n"] == 1 and out["fork_live_n"] == 1 and out["fork_seqs"] == 1 and out["seqs"] == 1
    assert out["fork_clipped_n"] == clipped
    assert 1 - out["fork_grad_kept"] / out["fork_grad_full"] == pytest.approx(removed, abs=1e-6)
    assert out["fork_ratio_max"] == pytest.approx(ratio, rel=1e-6)


def test_fork_clip_probe_without_fork_and_digest():
    probe = _probe("cispo")
    ids, logp, old, adv, mask = _batch(1.0, 1.0)
    out = probe(ids[:, :1], logp[:, :1], old[:, :1], adv, mask[:, :1])
    assert out["fork_n"] == 0 and out["fork_grad_full"] == 0.0
    first = probe.digests[0]
    probe.trainer.step = 1
    probe(ids, logp, old, adv, mask)
    assert probe.digests[1] != first and len(first) == 16


def test_fork_probability_matches_unpadded_forward():
    """The batched, padded probe equals softmax of a plain forward of each context on its own."""
    model = tiny_hybrid(16, 2, seed=0).eval()
    policy, tok, task = make_policy(model), ByteTokenizer(), get_task("guess-check")
    problems = [Problem("3+4=", 7, {"guess": 5}), Problem("0+1=", 1, {"guess": 12}), Problem("4+4=", 8, {"guess": 0})]
    got = fork_probability(policy, task, problems, tok, temperature=0.7)
    ref = []
    with torch.no_grad():
        for p in problems:
            ids = torch.tensor([tok.encode(p.prompt + str(p.meta["guess"]), add_bos=True)])
            logits = model(ids, attention_mask=torch.ones_like(ids))[0, -1] / 0.7
            ref.append(float(torch.softmax(logits.double(), -1)[FORK]))
    assert got == pytest.approx(sum(ref) / len(ref), rel=1e-4)


def test_study_config_errors():
    with pytest.raises(LumosError, match=r"The 'updates' parameter of StudyConfig must be divisors of "
                       r"prompts_per_step × group_size = 64\. Got \[3\] instead\."):
        StudyConfig(updates=(3,))
    with pytest.raises(LumosError, match="The 'algos' parameter of StudyConfig must be a non-empty list of distinct arms"):
        StudyConfig(algos=("ppo",))
    with pytest.raises(LumosError, match="distinct from each other and from tune_seeds"):
        StudyConfig(tune_seeds=(0,), eval_seeds=(0, 1))
    with pytest.raises(LumosError, match="lr"):
        StudyConfig(lr=float("nan"))
    with pytest.raises(LumosError, match="lr_grid"):
        StudyConfig(lr_grid={"cispo": (1e-3, float("inf"))})
    with pytest.raises(LumosError, match="lr_grid names 'gspo'"):
        StudyConfig(lr_grid={"gspo": (1e-3,)})
    with pytest.raises(LumosError, match="eval_samples"):
        StudyConfig(eval_samples=-1)
    with pytest.raises(LumosError, match="dynamic_sampling"):
        StudyConfig(dynamic_sampling="sometimes")
    with pytest.raises(LumosError, match="2 problems in StudyConfig: The 'lr' .* The 'target' "):
        StudyConfig(lr=float("nan"), target=2.0)


def test_arms_run_as_their_papers():
    cfg = StudyConfig(algos=("cispo", "dapo", "grpo", "ppo-seq", "gspo", "dr_grpo"), eps_high_grid=(2.0, 4.0),
                      lr_grid={"cispo": (1e-4, 5e-4)})
    rl = {a: cfg.rl_config(a, 4, 0) for a in cfg.algos}
    assert rl["cispo"].use_dynamic_sampling and rl["dapo"].use_dynamic_sampling
    assert not rl["grpo"].use_dynamic_sampling and rl["grpo"].beta == cfg.grpo_beta > 0
    assert rl["ppo-seq"].algo == "grpo" and rl["ppo-seq"].beta == 0.0
    assert rl["gspo"].loss_kwargs()["eps_low"] == 3e-4 and rl["gspo"].loss_kwargs()["eps_high"] == 4e-4
    assert rl["dr_grpo"].resolved_advantage_scale == "none"
    assert cfg.grid("cispo") == [(1e-4, 2.0), (1e-4, 4.0), (5e-4, 2.0), (5e-4, 4.0)]
    assert cfg.grid("dapo") == [(cfg.lr, None)]
    off = StudyConfig(dynamic_sampling="off")
    assert not off.rl_config("cispo", 1, 0).use_dynamic_sampling
    assert StudyConfig.from_dict(cfg.to_dict()) == cfg


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
    from lumos.studies.rl_study import choose, paired_bootstrap, score, summarise

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


@pytest.mark.slow
def test_quick_study_cli_is_not_degenerate_and_merges(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["rl", "study", "--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tuned lr" in text and "cispo − dapo" in text and "run directory" in text
    rows = read_jsonl(out / "metrics.jsonl")
    rl = [r for r in rows if "algo" in r]
    cfg = StudyConfig.quick()
    assert {(r["algo"], r["updates"], r["lr"], r["seed"]) for r in rl} == {
        (a, u, lr, s) for a in cfg.algos for u in cfg.updates for lr, _ in cfg.grid(a)
        for s in (*cfg.tune_seeds, *cfg.eval_seeds)}
    finals = {}
    for r in rl:
        if r["step"] == 0:
            assert 0.0 <= r["fork_prob"] <= 1.0 and "eval_accuracy" in r and r["compute_flops"] == 0.0
        else:
            assert r["optimizer_steps"] >= 1 and "fork_n" in r and not math.isnan(r["loss"]) and r["compute_flops"] > 0
        if r["step"] == cfg.steps:
            finals[(r["algo"], r["lr"], r["seed"])] = r["eval_accuracy"]
    # not degenerate: training moves accuracy away from the warm start and the arms do not all end equal
    starts = {r["seed"]: r["eval_accuracy"] for r in rl if r["step"] == 0}
    assert any(abs(v - starts[k[2]]) > 0.02 for k, v in finals.items())
    assert len({round(v, 4) for v in finals.values()}) > 1
    # paired: every run of a seed sees the same step-0 evaluation
    for s in (*cfg.tune_seeds, *cfg.eval_seeds):
        assert len({r["fork_prob"] for r in rl if r["seed"] == s and r["step"] == 0}) == 1
    html = (out / "report.html").read_text()
    assert "verified (identical step-0 evaluations" in html and "ScaleRL sigmoid" in html
    assert (out / "plots" / "study.png").is_file() and (out / "plots" / "curves_u4.png").is_file()
    assert "### Paired differences" in (out / "results.md").read_text()
    # --merge rebuilds the same tables from the run directory alone
    assert main(["rl", "study", "--merge", str(out), "--out", str(tmp_path / "m")]) == 0
    merged = capsys.readouterr().out

    def tables(t):
        return [ln for ln in t.split("run directory")[0].splitlines() if not ln.startswith("[")]

    assert tables(merged) == tables(text)
    # rl curves on the study: one figure with both arms
    assert main(["rl", "curves", str(out), "--n-boot", "5", "--out", str(tmp_path / "c")]) == 0
    assert "cispo" in capsys.readouterr().out and (tmp_path / "c" / "plots" / "curves_u4.png").is_file()


def test_study_flags_build_the_config():
    from lumos.cli.main import build_parser
    from lumos.rl.cli import _study_config

    args = build_parser().parse_args([
        "rl", "study", "--algos", "cispo,dapo,gspo", "--lr-grid", "cispo=1e-4,2e-4", "--lr-grid", "5e-4,1e-3",
        "--eps-high-grid", "2,4", "--tune-seeds", "7", "--eval-seeds", "1,2", "--updates", "4,16",
        "--dynamic-sampling", "off", "--last-k", "3"])
    cfg = _study_config(args)
    assert cfg.lr_grid == {"cispo": (1e-4, 2e-4), "dapo": (5e-4, 1e-3), "gspo": (5e-4, 1e-3)}  # ARM= wins
    assert cfg.eps_high_grid == (2.0, 4.0) and cfg.tune_seeds == (7,) and cfg.eval_seeds == (1, 2)
    assert cfg.updates == (4, 16) and cfg.dynamic_sampling == "off" and cfg.last_k == 3
    assert _study_config(build_parser().parse_args(["rl", "study", "--tune-seeds", ""])).tune_seeds == ()

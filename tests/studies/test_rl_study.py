"""lumos.studies.rl_study: the study config, its arms, the CLI flags and the quick study end to end."""

from __future__ import annotations

import math

import pytest

from lumos.cli.main import main
from lumos.core.errors import LumosError
from lumos.core.io import read_jsonl
from lumos.studies.rl_study import StudyConfig


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
            assert r["compute_flops"] > 0
            if r["optimizer_steps"]:
                assert "fork_n" in r and not math.isnan(r["loss"])
            else:       # dynamic sampling found no group with reward spread in its rounds: nothing to train on
                assert r["batch_groups"] == 0
        if r["step"] == cfg.steps:
            finals[(r["algo"], r["lr"], r["seed"])] = r["eval_accuracy"]
    trained = [r["optimizer_steps"] > 0 for r in rl if r["step"] > 0]
    assert sum(trained) >= len(trained) / 2
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

"""`lumos rl train`, `lumos rl compare`, `lumos rl fp32-head` end to end at toy sizes."""

from __future__ import annotations

import json

from lumos.cli.main import main
from lumos.core.io import read_jsonl

TINY = ["--warm-start", "2", "--steps", "2", "--prompts-per-step", "2", "--group-size", "2", "--minibatches", "1",
        "--max-new-tokens", "3", "--eval-problems", "4", "--eval-every", "1", "--task-arg", "digits=1"]


def test_rl_train_and_resume_cli(tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["rl", "train", "--algo", "cispo", "--checkpoint-every", "1", "--out", str(out), *TINY]) == 0
    assert "run directory" in capsys.readouterr().out
    rows = [r for r in read_jsonl(out / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in rows] == [1, 2]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["rl"]["adam_eps"] == 1e-15 and cfg["rl"]["adam_beta2"] == 0.95
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_000002"
    # resuming a finished run trains nothing more and keeps the metrics
    assert main(["rl", "train", "--resume", "--checkpoint-every", "1", "--out", str(out), *TINY]) == 0
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "reward" in r] == [1, 2]


def test_rl_compare_cli(tmp_path, capsys):
    assert main(["rl", "compare", "--algos", "cispo,grpo", "--seeds", "1", "--out", str(tmp_path / "c"), *TINY]) == 0
    out = capsys.readouterr().out
    assert "steps to target" in out and "cispo" in out and "grpo" in out
    assert (tmp_path / "c" / "plots" / "compare.png").is_file()


def test_cli_errors(tmp_path, capsys):
    out = ["--out", str(tmp_path / "never")]
    assert main(["rl", "train", *TINY, "--task", "no-such-task", *out]) == 2
    assert "must be one of the registered tasks" in capsys.readouterr().err
    assert main(["rl", "compare", *TINY, "--algos", "cispo,ppo9", *out]) == 2
    assert "ppo9" in capsys.readouterr().err
    assert main(["rl", "train", *TINY, "--group-size", "0", *out]) == 2
    assert "group_size" in capsys.readouterr().err
    assert main(["rl", "train", *TINY, "--task-arg", "digits", *out]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_a_loss_registered_here_trains_through_the_cli(tmp_path, capsys, monkeypatch):
    """One registration is all an objective needs: its name, defaults and own hyper-parameters reach the trainer."""
    import torch

    from lumos.rl import objectives

    monkeypatch.setattr(objectives.LOSSES, "_entries", dict(objectives.LOSSES._entries))  # ends with the test
    calls = []

    @objectives.register_loss("reinforce-test", help="plain REINFORCE (test)", normalizer="sequences")
    def reinforce(logp, old_logp, advantages, mask, *, scale: float = 1.0, normalizer=None):
        calls.append((scale, float(normalizer)))
        adv, m = advantages[:, None].to(logp.dtype), mask.to(logp.dtype)
        loss = -(scale * adv * logp * m).sum() / normalizer
        return loss, {"loss": loss.detach(), "num_tokens": m.sum()}

    out = tmp_path / "r"
    assert main(["rl", "train", "--algo", "reinforce-test", "--loss-arg", "scale=0.5", "--out", str(out), *TINY]) == 0
    assert "run directory" in capsys.readouterr().out
    assert calls and all(scale == 0.5 for scale, _ in calls)
    assert all(n == 4.0 for _, n in calls)  # "sequences": the 2 prompts × 2 samples of the minibatch
    assert json.loads((out / "config.json").read_text())["rl"]["loss_args"] == {"scale": 0.5}
    assert torch.isfinite(torch.tensor([r["loss"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r])).all()
    # an objective's own hyper-parameter that it does not take is one clear error
    assert main(["rl", "train", "--algo", "reinforce-test", "--beta", "0.1", "--out", str(tmp_path / "n"), *TINY]) == 2
    assert "grpo" in capsys.readouterr().err

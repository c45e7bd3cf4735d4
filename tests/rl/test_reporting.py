"""--report-to: TensorBoard and W&B sinks, checked before any work (lumos.rl.reporting)."""

from __future__ import annotations

import math
import sys
import types

import pytest

from lumos.core.errors import LumosError
from lumos.core.rundir import RunDir
from lumos.rl.reporting import Board, check_report_to, open_board


class _FakeRun:
    def __init__(self, **kwargs):
        self.init, self.logged, self.finished = kwargs, [], False

    def log(self, data, step):
        self.logged.append((step, data))

    def finish(self):
        self.finished = True


@pytest.fixture
def fake_wandb(monkeypatch):
    runs = []

    def init(**kwargs):
        runs.append(_FakeRun(**kwargs))
        return runs[-1]

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    monkeypatch.setenv("WANDB_MODE", "offline")
    return runs


def test_rows_reach_wandb_as_rl_scalars_with_the_sample_and_a_stable_id(tmp_path, fake_wandb):
    assert check_report_to(["wandb", "none"]) == ("wandb",)
    with RunDir.create("rl train", {"rl": {"algo": "cispo"}}, out=tmp_path / "run", seed=0) as run:
        board = open_board(run, ("wandb",))
        board({"step": 3, "reward": 0.5, "loss": 2, "flag": True, "bad": math.nan, "sample": "q -> a", "note": "x"})
        board.close()
        again = open_board(run, ("wandb",))          # a resumed run: the same W&B run id
    first, second = fake_wandb
    assert first.logged == [(3, {"rl/reward": 0.5, "rl/loss": 2.0, "rl/sample": "q -> a"})] and first.finished
    assert first.init["config"] == {"rl": {"algo": "cispo"}} and first.init["name"] == "run"
    assert first.init["dir"] == str(run.path) and first.init["resume"] == "allow"
    assert first.init["id"] == second.init["id"] and first.init["id"].startswith("lumos-")
    assert again.wandb_run is second and open_board(None, ("wandb",)).wandb_run is None   # non-main process


def test_credentials_are_checked_before_any_work(tmp_path, fake_wandb, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(LumosError, match=r"no W&B credentials .* set WANDB_MODE=offline"):
        check_report_to(["wandb"])
    (tmp_path / "netrc").write_text("machine api.wandb.ai login user password 0123456789abcdef\n")
    (tmp_path / "netrc").chmod(0o600)
    assert check_report_to(["wandb"]) == ("wandb",)                  # 'wandb login' wrote it
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert check_report_to(["wandb"]) == ("wandb",)


def test_unknown_sinks_and_a_failing_wandb_start_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(LumosError, match=r"--report-to 'comet': choose from tensorboard, wandb or none"):
        check_report_to(["comet"])

    def init(**kwargs):
        raise RuntimeError("network\nunreachable")

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    with RunDir.create("rl train", {}, out=tmp_path / "run", seed=0) as run:
        with pytest.raises(LumosError, match=r"^--report-to wandb: W&B could not start a run \(network unreachable\)"):
            open_board(run, ("wandb",))


def test_tensorboard_and_no_sink(tmp_path):
    pytest.importorskip("tensorboard")
    assert Board()({"step": 1, "reward": 1.0}) is None                 # no sink: nothing happens
    with RunDir.create("rl train", {}, out=tmp_path / "run", seed=0) as run:
        board = open_board(run, check_report_to(["tensorboard"]))
        board({"step": 1, "reward": 0.25, "sample": "s"})
        board.close()
    assert list((run.path / "tensorboard").glob("events.out.tfevents.*"))


def test_a_real_offline_wandb_run_from_the_cli(tmp_path, monkeypatch, capsys):
    """The real package, offline (no account, no network): the run's metrics land in <run>/wandb."""
    pytest.importorskip("wandb")
    from lumos.cli.main import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    assert main(["rl", "train", "--warm-start", "0", "--steps", "2", "--prompts-per-step", "2", "--group-size", "2",
                 "--minibatches", "1", "--max-new-tokens", "2", "--eval-every", "0", "--task-arg", "digits=1",
                 "--report-to", "wandb", "--out", str(out)]) == 0
    capsys.readouterr()
    logs = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 1
    data = logs[0].read_bytes()
    assert b"rl/reward" in data and b"rl/loss" in data

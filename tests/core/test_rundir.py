import json

import pytest
import torch

from lumos.core.io import read_jsonl
from lumos.core.rundir import RunDir
from lumos.core.seed import get_rng_state, seed_everything, set_rng_state


def test_rundir_layout(tmp_path):
    with RunDir.create("value", {"noise": 0.1}, out=tmp_path / "r", seed=3) as run:
        run.log({"step": 1, "loss": 0.5})
        run.report.section("S").text("hi")
    p = tmp_path / "r"
    assert json.loads((p / "config.json").read_text()) == {"noise": 0.1}
    man = json.loads((p / "manifest.json").read_text())
    assert man["seed"] == 3 and man["status"] == "ok" and man["end"] is not None
    for key in ("lumos", "torch", "python", "host", "start", "git_commit"):
        assert key in man
    assert read_jsonl(p / "metrics.jsonl") == [{"step": 1, "loss": 0.5}]
    assert (p / "plots").is_dir() and (p / "report.html").is_file()


def test_rundir_failure_status(tmp_path):
    with pytest.raises(RuntimeError):
        with RunDir.create("x", {}, out=tmp_path / "r"):
            raise RuntimeError("boom")
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["status"].startswith("failed")


def test_default_location(tmp_path):
    run = RunDir.create("demo", {}, root=tmp_path)
    assert run.path.parent == tmp_path and run.path.name.startswith("demo-")


def test_seed_and_rng_state_roundtrip():
    seed_everything(7)
    a = torch.rand(3)
    seed_everything(7)
    assert torch.equal(a, torch.rand(3))
    state = get_rng_state()
    x = (torch.rand(2), __import__("numpy").random.rand(), __import__("random").random())
    set_rng_state(state)
    y = (torch.rand(2), __import__("numpy").random.rand(), __import__("random").random())
    assert torch.equal(x[0], y[0]) and x[1] == y[1] and x[2] == y[2]


def test_out_is_never_silently_reused(tmp_path):
    import json

    import pytest

    from lumos.core.errors import LumosError
    from lumos.core.rundir import RunDir

    out = tmp_path / "r"
    with RunDir.create("x", {"a": 1}, out=out) as run:
        run.log({"step": 1})
    with pytest.raises(LumosError, match="--resume.*--overwrite"):
        RunDir.create("x", {"a": 2}, out=out)
    (out / ".metrics.jsonl.zz.tmp").write_text("half")
    resumed = RunDir.create("x", {"a": 1}, out=out, resume=True, overrides={"lr": 0.1})
    assert (out / "metrics.jsonl").read_text().count("\n") == 1  # kept
    assert not (out / ".metrics.jsonl.zz.tmp").exists()  # swept
    resumed.finish()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resumes"][0]["overrides"] == {"lr": 0.1} and manifest["status"] == "ok"
    RunDir.create("x", {"a": 3}, out=out, overwrite=True).finish()
    assert (out / "metrics.jsonl").read_text() == ""
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(LumosError, match="not a lumos run"):
        RunDir.create("x", {}, out=tmp_path / "other", overwrite=True)
    with pytest.raises(LumosError, match="not a directory"):
        RunDir.create("x", {}, out=tmp_path / "other" / "notes.txt")
    with pytest.raises(LumosError, match="not a run directory"):
        RunDir.create("x", {}, out=tmp_path / "new", resume=True)


def test_unwritable_out_is_refused(tmp_path, monkeypatch):
    import os

    import pytest

    from lumos.core.errors import LumosError
    from lumos.core.rundir import check_out_dir

    monkeypatch.setattr(os, "access", lambda path, mode: False)  # the tests may run as root, who can write anywhere
    with pytest.raises(LumosError, match="not writable"):
        check_out_dir(tmp_path / "new")

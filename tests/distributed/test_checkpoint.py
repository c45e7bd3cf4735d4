"""Distributed checkpoints read without running pickles from outside, and every damaged one is one clear line.

Each attack has an honest twin: the same crafted file read the way torch's defaults read it creates the marker
(so the test can fail), lumos's reader refuses it and the marker never appears.
"""

from __future__ import annotations

import os
import pickle
import shutil

import pytest
import torch

from lumos.cli.main import main
from lumos.core.errors import LumosError
from lumos.distributed.checkpoint import (
    SafeFileSystemReader,
    SafeLoadPlanner,
    latest_distributed,
    load_distributed,
    read_metadata,
    save_distributed,
)
from lumos.models import tiny_hybrid


class _Touch:
    """Unpickling this creates ``path`` (what a malicious checkpoint would do, harmlessly)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """One genuine checkpoint (model + AdamW state after a step), written once; tests damage copies of it."""
    model = tiny_hybrid(16, 2, seed=0)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.zeros(1, 3, dtype=torch.long)).float().sum().backward()
    opt.step()
    return save_distributed(tmp_path_factory.mktemp("dcp") / "root", 1, model, opt, {"skipped_steps": 0}), model


@pytest.fixture
def ckpt(pristine, tmp_path):
    path, model = pristine
    shutil.copytree(path.parent, tmp_path / "root")
    return tmp_path / "root" / path.name, model


def test_genuine_checkpoint_reads_through_the_safe_reader(ckpt):
    from torch.distributed.checkpoint.metadata import Metadata

    path, model = ckpt
    md = read_metadata(path)
    assert isinstance(md, Metadata) and any(k.startswith("model.") for k in md.state_dict_metadata)
    back = tiny_hybrid(16, 2, seed=5)
    opt = torch.optim.AdamW(back.parameters())
    assert load_distributed(path, back, opt)["step"] == 1              # the optimizer's bytes entries too
    assert all(torch.equal(back.state_dict()[k], v) for k, v in model.state_dict().items())
    assert opt.param_groups[0]["lr"] == 1e-3 and len(opt.state) == len(list(back.parameters()))


def test_crafted_metadata_runs_nothing(ckpt, tmp_path, capsys):
    path, _ = ckpt
    marker = tmp_path / "MARKER"
    (path / ".metadata").write_bytes(pickle.dumps(_Touch(str(marker))))
    with open(path / ".metadata", "rb") as fh:                         # the honest twin: plain pickle runs it
        pickle.load(fh)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(LumosError, match="nothing in it was run"):
        load_distributed(path, tiny_hybrid(16, 2))
    status = main(["export", str(path.parent), str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "open, which a checkpoint's metadata never holds" in err, err
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_crafted_bytes_entry_runs_nothing(tmp_path):
    """A non-tensor entry (as the optimizer's param groups are stored) that unpickles to code: torch's default
    planner loads it with weights_only=False; lumos's with weights_only=True."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader

    marker = tmp_path / "MARKER"
    d = tmp_path / "dcp"
    dcp.save({"w": torch.ones(2), "evil": _Touch(str(marker))}, checkpoint_id=str(d), no_dist=True)
    dcp.load({"w": torch.zeros(2), "evil": None}, storage_reader=FileSystemReader(str(d)),
             planner=DefaultLoadPlanner(), no_dist=True)
    assert marker.exists()                                             # the honest twin
    marker.unlink()
    with pytest.raises(BaseException, match="Unsupported global|weights_only|WeightsUnpickler"):
        dcp.load({"w": torch.zeros(2), "evil": None}, storage_reader=SafeFileSystemReader(d),
                 planner=SafeLoadPlanner(), no_dist=True)
    assert not marker.exists()


def test_metadata_pointing_outside_the_directory_is_refused(ckpt):
    path, _ = ckpt
    md = read_metadata(path)
    info = next(iter(md.storage_data.values()))
    info.relative_path = "../../etc/passwd"
    (path / ".metadata").write_bytes(pickle.dumps(md))
    with pytest.raises(LumosError, match="outside the checkpoint directory"):
        read_metadata(path)


@pytest.mark.parametrize("damage, why", [("missing", "is incomplete: __0_0.distcp is missing"),
                                         ("truncated", "is truncated: __0_0.distcp is shorter"),
                                         ("metadata", "not distributed-checkpoint metadata"),
                                         ("state", "state.json is damaged")])
def test_damaged_checkpoint_is_one_line(ckpt, tmp_path, capsys, damage, why):
    path, _ = ckpt
    shard = path / "__0_0.distcp"
    if damage == "missing":
        shard.unlink()
    elif damage == "truncated":
        shard.write_bytes(shard.read_bytes()[:1000])
    elif damage == "metadata":
        (path / ".metadata").write_bytes(b"\x80\x04garbage")
    else:
        (path / "state.json").write_text('{"world_size": 1}')
    with pytest.raises(LumosError, match=why):
        load_distributed(path, tiny_hybrid(16, 2))
    assert main(["export", str(path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert why.split(":")[0] in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_model_that_does_not_fit_is_one_line(ckpt):
    path, _ = ckpt
    with pytest.raises(LumosError, match="does not fit this model"):
        load_distributed(path, tiny_hybrid(32, 2))


def test_latest_pointer_messages_never_say_delete(ckpt, tmp_path):
    path, _ = ckpt
    root = path.parent
    (root / "latest").write_text("step_000009\n")
    with pytest.raises(LumosError) as exc:
        latest_distributed(root)
    assert "does not exist" in str(exc.value) and "existing: step_000001" in str(exc.value)
    assert "elete" not in str(exc.value)
    (root / "latest").write_text("../../elsewhere\n")
    with pytest.raises(LumosError, match="not the name of a step_\\* directory"):
        latest_distributed(root)
    # a healthy single-process run: latest names a complete training checkpoint, which is not an error to fix
    single = tmp_path / "single"
    shutil.copytree(root, single)
    (single / "latest").write_text("step_000001\n")
    os.remove(single / "step_000001" / ".metadata")
    (single / "step_000001" / "model.safetensors").write_bytes(b"")
    with pytest.raises(LumosError) as exc:
        latest_distributed(single)
    assert "single-process training checkpoint" in str(exc.value) and "elete" not in str(exc.value)

"""What a checkpoint path is, and the model it holds, for every kind lumos reads."""

from __future__ import annotations

import json

import pytest
import torch

from lumos.core.errors import LumosError
from lumos.models import load_pretrained, save_pretrained
from lumos.models.checkpoint.resolve import open_checkpoint, resolve_checkpoint
from models._factories import tiny_lumos


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """A release directory, a single-process run and a distributed run of the same model."""
    from lumos.distributed.checkpoint import save_distributed
    from lumos.rl.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("layouts")
    model = tiny_lumos([0, 1])
    save_pretrained(model, d / "release")
    for name in ("run", "fsdp_run"):
        (d / name).mkdir()
        (d / name / "manifest.json").write_text("{}")
        (d / name / "config.json").write_text(json.dumps({"model": "hybrid"}))
    opt = torch.optim.AdamW(model.parameters())
    save_checkpoint(d / "run" / "checkpoints", 4, model, opt, {})
    save_distributed(d / "fsdp_run" / "checkpoints", 4, model, opt, {})
    return d, model


def test_every_kind_resolves_and_opens_to_the_same_model(layouts):
    d, model = layouts
    cases = {d / "release": ("pretrained", d / "release", None),
             d / "run": ("training", d / "run" / "checkpoints" / "step_000004", d / "run"),
             d / "run" / "checkpoints": ("training", d / "run" / "checkpoints" / "step_000004", d / "run"),
             d / "run" / "checkpoints" / "step_000004": ("training", d / "run" / "checkpoints" / "step_000004",
                                                         d / "run"),
             d / "fsdp_run": ("distributed", d / "fsdp_run" / "checkpoints" / "step_000004", d / "fsdp_run")}
    for path, (kind, weights, run) in cases.items():
        src = resolve_checkpoint(path)
        assert (src.kind, src.path, src.run) == (kind, weights, run), path
        assert src.format == ("minimax_m1" if kind == "pretrained" else None)
        back = open_checkpoint(src)
        assert all(torch.equal(back.state_dict()[k], v) for k, v in model.state_dict().items()), path
    assert resolve_checkpoint(d / "run").model_spec == "hybrid"
    # load_pretrained opens a run too (unsharded), and keeps its checks for release directories
    assert torch.equal(load_pretrained(d / "run").model.norm.weight, model.model.norm.weight)
    assert load_pretrained(d / "fsdp_run", dtype=torch.bfloat16).dtype == torch.bfloat16


def test_tokenizer_travels_from_the_runs_model_directory(layouts, tmp_path):
    d, _ = layouts
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "tokenizer.json").write_text("{}")
    run = tmp_path / "run"
    import shutil

    shutil.copytree(d / "run", run)
    (run / "config.json").write_text(json.dumps({"model": str(tmp_path / "base")}))
    src = resolve_checkpoint(run)
    assert src.tokenizer_dir == tmp_path / "base" and [f.name for f in src.tokenizer_files()] == ["tokenizer.json"]
    assert resolve_checkpoint(d / "release").tokenizer_dir is None


def test_pointer_and_format_errors(layouts, tmp_path):
    import shutil

    d, _ = layouts
    run = tmp_path / "run"
    shutil.copytree(d / "run", run)
    (run / "checkpoints" / "latest").write_text("step_000099\n")
    with pytest.raises(LumosError, match="names step_000099, which does not exist.*existing: step_000004") as exc:
        resolve_checkpoint(run)
    assert "elete" not in str(exc.value)
    with pytest.raises(LumosError, match="lumos's own layout, not 'transformers'"):
        open_checkpoint(d / "run", format="transformers")
    with pytest.raises(LumosError, match="is a file"):
        resolve_checkpoint(d / "release" / "config.json")

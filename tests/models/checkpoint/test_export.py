"""``lumos export``: release ↔ transformers round trips with equal tensors, run directories (single-process and
distributed) to either format, transformers opening the output, and every refusal that protects the user's files."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from lumos.cli.main import main
from lumos.core.errors import LumosError
from lumos.models import HybridLM, load_pretrained, save_pretrained
from lumos.models.checkpoint.export import export_checkpoint
from lumos.models.checkpoint.pretrained import INDEX_NAME
from lumos.testing import assert_close
from models._factories import tiny_lumos

IDS = torch.randint(0, 61, (2, 9), generator=torch.Generator().manual_seed(3))


def _tensors(path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint directory, by key (read through the index)."""
    weight_map = json.loads((path / INDEX_NAME).read_text())["weight_map"]
    out = {}
    for shard in sorted(set(weight_map.values())):
        with safe_open(str(path / shard), framework="pt") as fh:
            out.update({k: fh.get_tensor(k) for k in fh.keys()})
    return out


def _tree(path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _run_dir(tmp_path, model: HybridLM, name: str = "run", with_config: bool = True, model_spec: str = "hybrid"):
    """A run directory as `lumos rl train` leaves it: manifest, config.json, checkpoints/step_*/ + latest,
    written by the trainer's own checkpoint code (lumos.rl.checkpoint)."""
    from lumos.rl.checkpoint import save_checkpoint

    run = tmp_path / name
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"status": "ok", "command": "rl train"}))
    (run / "config.json").write_text(json.dumps({"rl": {}, "model": model_spec, "warm_start_steps": 0}))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(IDS % model.config.vocab_size).float().pow(2).mean().backward()
    opt.step()
    for step in (1, 2):
        with torch.no_grad():
            model.model.norm.weight.add_(0.5)          # step 2 differs from step 1: latest must be step 2
        step_dir = save_checkpoint(run / "checkpoints", step, model, opt, {"skipped_steps": 0})
    if not with_config:
        (step_dir / "config.json").unlink()
    return run


def test_release_to_transformers_to_release_equal_tensors(tmp_path):
    model = tiny_lumos([0, 1, 0], vocab_size=61, rotary_dim=4, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    save_pretrained(model, tmp_path / "rel", max_shard_size=20_000)     # partial RoPE: q/k rows permuted, back
    export_checkpoint(tmp_path / "rel", tmp_path / "tf", format="transformers")
    export_checkpoint(tmp_path / "tf", tmp_path / "rel2", format="minimax_m1", max_shard_size=20_000)
    a, b = _tensors(tmp_path / "rel"), _tensors(tmp_path / "rel2")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "tf" / "config.json").read_text())["model_type"] == "minimax"
    assert json.loads((tmp_path / "rel2" / "config.json").read_text()) == \
        json.loads((tmp_path / "rel" / "config.json").read_text())
    # transformers' own MiniMax classes open the exported directory and compute the same logits
    from transformers import MiniMaxForCausalLM

    tf = MiniMaxForCausalLM.from_pretrained(tmp_path / "tf").eval()
    with torch.no_grad():
        assert_close("transformers reads the export", tf(IDS).logits, model(IDS), atol=1e-4, rtol=1e-4)


def test_export_dtype_and_tokenizer_files(tmp_path):
    model = tiny_lumos([0, 1])
    save_pretrained(model, tmp_path / "src")
    (tmp_path / "src" / "tokenizer.json").write_text('{"version": "1.0"}')
    out = export_checkpoint(tmp_path / "src", tmp_path / "bf16", dtype="bfloat16")
    assert {t.dtype for t in _tensors(out).values()} == {torch.bfloat16}
    assert (out / "tokenizer.json").read_text() == '{"version": "1.0"}'
    assert oct((out / "config.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    import os

    old = os.umask(0o022)
    os.umask(old)
    return old


@pytest.mark.parametrize("fmt", ["minimax_m1", "transformers"])
def test_run_directory_to_either_format(tmp_path, fmt):
    model = tiny_lumos([0, 1])
    run = _run_dir(tmp_path, model)
    status = main(["export", str(run), str(tmp_path / "out"), "--format", fmt])
    assert status == 0
    back = load_pretrained(tmp_path / "out")
    for k, v in model.state_dict().items():                # the latest step (2), not step 1
        assert torch.equal(back.state_dict()[k], v), k


def test_distributed_run_directory_to_either_format(tmp_path):
    from lumos.distributed.checkpoint import save_distributed

    model = tiny_lumos([0, 1])
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text("{}")
    save_distributed(run / "checkpoints", 3, model, torch.optim.AdamW(model.parameters()), {"skipped_steps": 0})
    for fmt in ("minimax_m1", "transformers"):
        out = export_checkpoint(run, tmp_path / fmt, format=fmt)
        back = load_pretrained(out)
        assert all(torch.equal(back.state_dict()[k], v) for k, v in model.state_dict().items())


def test_old_run_without_config(tmp_path, capsys):
    """A step directory from before lumos wrote config.json beside the weights: the library asks for the
    configuration; the CLI rebuilds the shape of a built-in --model, or takes --config."""
    from lumos.rl.experiment import build_model

    model = build_model("hybrid")
    run = _run_dir(tmp_path, model, with_config=False)
    with pytest.raises(LumosError, match=r"has no config.json \(the run trained --model 'hybrid'\).*--config"):
        export_checkpoint(run, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert main(["export", str(run), str(tmp_path / "cli")]) == 0
    assert all(torch.equal(load_pretrained(tmp_path / "cli").state_dict()[k], v)
               for k, v in model.state_dict().items())
    model.config.to_json(tmp_path / "cfg.json")
    out = export_checkpoint(run, tmp_path / "api", config=tmp_path / "cfg.json")
    assert torch.equal(load_pretrained(out)(IDS % 259), model.eval()(IDS % 259))
    wrong = tmp_path / "wrong.json"
    tiny_lumos([0, 1]).config.to_json(wrong)
    with pytest.raises(LumosError, match="does not hold this model|configuration does not belong"):
        export_checkpoint(run, tmp_path / "w", config=wrong)


def test_llama_run_is_refused(tmp_path):
    model = tiny_lumos([0, 1])
    run = _run_dir(tmp_path, model, with_config=False, model_spec="llama")
    with pytest.raises(LumosError, match=r"trained a transformers model \('llama'\)"):
        export_checkpoint(run, tmp_path / "x")


# ------------------------------------------------------------------------------------ nothing overwritten
def test_export_never_writes_into_its_source(tmp_path, capsys):
    run = _run_dir(tmp_path, tiny_lumos([0, 1]))
    before = _tree(run)
    step = run / "checkpoints" / "step_000002"
    for dst in (run, run / "exported", run / "checkpoints", step, step / "sub"):
        assert main(["export", str(run), str(dst)]) == 2
        err = capsys.readouterr().err
        assert "overlaps the source" in err and err.count("\n") == 1, err
    assert main(["export", str(step), str(run)]) == 2            # a step of a run into the run
    assert "overlaps the source" in capsys.readouterr().err
    assert _tree(run) == before


def test_export_over_a_checkpoint_needs_overwrite(tmp_path, capsys):
    save_pretrained(tiny_lumos([0, 1], seed=1), tmp_path / "a")
    save_pretrained(tiny_lumos([0, 1], seed=2), tmp_path / "b")
    before = _tree(tmp_path / "b")
    assert main(["export", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "already holds a checkpoint; pass --overwrite" in err and err.count("\n") == 1
    assert _tree(tmp_path / "b") == before
    assert main(["export", str(tmp_path / "a"), str(tmp_path / "b"), "--overwrite", "--format", "transformers"]) == 0
    assert _tensors(tmp_path / "b").keys() != before.keys()
    assert torch.equal(load_pretrained(tmp_path / "b")(IDS % 259), load_pretrained(tmp_path / "a")(IDS % 259))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]     # no temporary directory left


def test_export_refuses_other_destinations(tmp_path, capsys):
    save_pretrained(tiny_lumos([0, 1]), tmp_path / "a")
    (tmp_path / "file").write_text("x")
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest.json").write_text("{}")
    (tmp_path / "run" / "config.json").write_text("{}")
    (tmp_path / "run" / "model.safetensors").write_bytes(b"")
    cases = {"file": "is not a directory", "stuff": "not empty and holds no checkpoint",
             "run": "is a lumos run directory", "file/sub": "is a file"}
    for dst, why in cases.items():
        for extra in ([], ["--overwrite"]):
            assert main(["export", str(tmp_path / "a"), str(tmp_path / dst), *extra]) == 2
            err = capsys.readouterr().err
            assert why in err and err.count("\n") == 1, (dst, err)
    assert (tmp_path / "stuff" / "notes.txt").read_text() == "mine" and (tmp_path / "file").read_text() == "x"
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "a"), str(tmp_path / "empty")]) == 0     # an empty directory is fine
    assert (tmp_path / "empty" / "config.json").is_file()


def test_export_source_errors(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest.json").write_text("{}")
    (tmp_path / "plain").mkdir()
    for src, why in ((tmp_path / "missing", "Checkpoint not found"), (tmp_path / "plain", "not a checkpoint lumos "
                     "reads"), (tmp_path / "run", "run directory without a checkpoint")):
        assert main(["export", str(src), str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_another_transformers_model_points_to_its_own_layout(tmp_path, capsys):
    """An RL checkpoint of a user's own transformers model (here a tiny Qwen2 directory) is not a MiniMax model:
    exporting it is refused in one line that says the directory already opens as it is."""
    from models._own_model import save_model_dir

    src = save_model_dir(tmp_path / "own")
    for fmt in ("transformers", "minimax_m1"):
        assert main(["export", str(src), str(tmp_path / f"out-{fmt}"), "--format", fmt]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "model_type 'qwen2'" in err and "lumos generate --model DIR" in err, err
        assert not (tmp_path / f"out-{fmt}").exists()

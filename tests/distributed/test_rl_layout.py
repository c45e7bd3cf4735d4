"""RL and SFT on an FSDP2-sharded (and expert-parallel) model in 2 gloo processes == one process; distributed
checkpoints: bit-identical resume, 2 → 1 and 1 → 2 resharding, export, and a save killed mid-way."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from lumos.distributed.checkpoint import (
    export_checkpoint,
    latest_distributed,
    load_distributed,
    save_distributed,
)
from lumos.distributed.process_group import spawn
from lumos.models import tiny_hybrid
from lumos.rl.config import RLConfig
from lumos.rl.sft import SFTConfig, sft_warm_start
from lumos.rl.tasks import get_task
from lumos.rl.trainer import RLTrainer

ROOT = Path(__file__).resolve().parents[2]


def _cfg(**kw):
    base = dict(algo="cispo", prompts_per_step=4, group_size=4, minibatches=2, max_new_tokens=5, lr=3e-3,
                eval_every=0, eval_problems=8, temperature=1.5, adam_eps=1e-8, checkpoint_every=1, steps=2)
    base.update(kw)
    return RLConfig(**base)


def _task():
    return get_task("addition", digits=1)


def _train(model, run=None):
    """5 SFT steps then 2 RL steps (4 optimizer steps); returns (SFT losses, RL losses per step)."""
    sft = sft_warm_start(model, _task(), SFTConfig(steps=5, batch_size=8, lr=3e-3, seed=0))
    tr = RLTrainer(model, _task(), _cfg(), run=run)
    tr.train()
    return sft, [r["loss"] for r in tr.history], tr


def _full(model):
    from lumos.distributed.parallel import local_shard

    out = {}
    for k, v in model.state_dict().items():
        out[k] = v.full_tensor() if hasattr(v, "full_tensor") else local_shard(v).clone()
    return out


def _worker(rank, world, out):
    from lumos.core.rundir import RunDir
    from lumos.rl.experiment import shard_for_training

    out = Path(out)
    # 1 → 2: a checkpoint written by one process loads into the sharded model
    model = shard_for_training(tiny_hybrid(32, 2, seed=1))
    load_distributed(out / "single_ckpt" / "step_000000", model)
    ref = torch.load(out / "single_ckpt.pt", weights_only=True)
    for k, v in _full(model).items():
        assert torch.equal(v, ref[k]), k
    for ep in (1, 2):
        run = RunDir.create("test", {}, out=out / f"run_ep{ep}") if rank == 0 else None
        model = shard_for_training(tiny_hybrid(32, 2, seed=0), expert_parallel=ep)
        sft, rl, _ = _train(model, run)
        final = _full(model)
        if rank == 0:
            torch.save({"sft": sft, "rl": rl, "final": final}, out / f"ep{ep}.pt")
        # resume from step 1 on the same world size: step 2 again, bit-identical
        model2 = shard_for_training(tiny_hybrid(32, 2, seed=5), expert_parallel=ep)
        tr = RLTrainer(model2, _task(), _cfg(checkpoint_every=0), run=None)
        ckpt = out / f"run_ep{ep}" / "checkpoints" / "step_000001"
        assert tr.resume(ckpt) == 1
        tr.train()
        for k, v in _full(model2).items():
            assert torch.equal(v, final[k]), (ep, k, float((v - final[k]).abs().max()))


@pytest.mark.distributed
def test_fsdp_and_expert_parallel_training_equals_single_process(tmp_path):
    torch.manual_seed(0)
    single = tiny_hybrid(32, 2, seed=1)
    opt = torch.optim.AdamW(single.parameters())
    save_distributed(tmp_path / "single_ckpt", 0, single, opt, {})
    torch.save({k: v.clone() for k, v in single.state_dict().items()}, tmp_path / "single_ckpt.pt")

    spawn(_worker, nprocs=2, args=(str(tmp_path),))

    model = tiny_hybrid(32, 2, seed=0)
    sft, rl, tr = _train(model)
    assert len(sft) == 5 and len(rl) == 2
    for ep in (1, 2):
        got = torch.load(tmp_path / f"ep{ep}.pt", weights_only=True)
        assert max(abs(a - b) for a, b in zip(got["sft"], sft)) < 1e-6, (got["sft"], sft)
        assert max(abs(a - b) for a, b in zip(got["rl"], rl)) < 1e-6, (got["rl"], rl)
        for k, v in model.state_dict().items():
            assert torch.allclose(got["final"][k], v, atol=3e-5, rtol=0), k
        # 2 → 1: the 2-process checkpoint of step 2 loads into one unsharded process, exactly
        ckpt = latest_distributed(tmp_path / f"run_ep{ep}")
        assert ckpt.name == "step_000002"
        plain = tiny_hybrid(32, 2, seed=9)
        opt = torch.optim.AdamW(plain.parameters())
        state = load_distributed(ckpt, plain, opt)
        assert state["step"] == 2 and state["world_size"] == 2
        for k, v in plain.state_dict().items():
            assert torch.equal(v, got["final"][k]), k
        assert len(opt.state) == len(list(plain.parameters()))
        assert RLTrainer(tiny_hybrid(32, 2, seed=9), _task(), _cfg()).resume(tmp_path / f"run_ep{ep}") == 2
    # export to both release formats
    from lumos.models import load_pretrained

    for fmt in ("minimax_m1", "transformers"):
        path = export_checkpoint(tmp_path / "run_ep2", tmp_path / f"export_{fmt}", format=fmt)
        back = load_pretrained(path)
        for k, v in back.state_dict().items():
            assert torch.equal(v, got["final"][k]), (fmt, k)


_KILLED_SAVE = textwrap.dedent("""
    import os, sys, torch
    import lumos.distributed.checkpoint as dc
    from lumos.models import tiny_hybrid
    root = sys.argv[1]
    model = tiny_hybrid(16, 1, seed=0)
    opt = torch.optim.AdamW(model.parameters())
    dc.save_distributed(root, 1, model, opt, {"tag": "first"})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    dc._finalize = lambda tmp, final: os.kill(os.getpid(), 9)   # kill -9 once every shard of step 2 is written
    dc.save_distributed(root, 2, model, opt, {"tag": "second"})
""")


def test_killed_save_never_becomes_latest(tmp_path):
    root = tmp_path / "ckpt"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(root)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (root / ".step_000002.partial" / ".metadata").is_file()     # the killed save had written its shards
    latest = latest_distributed(root)
    assert latest.name == "step_000001"
    model = tiny_hybrid(16, 1, seed=3)
    ref = tiny_hybrid(16, 1, seed=0)
    assert load_distributed(latest, model)["tag"] == "first"
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref.state_dict()[k]), k
    save_distributed(root, 2, model, None, {"tag": "again"})            # the next save clears the partial one
    assert not (root / ".step_000002.partial").exists()
    assert latest_distributed(root).name == "step_000002"
    # lumos export: the latest checkpoint → release safetensors (and a clear error for a non-checkpoint)
    from lumos.cli.main import main
    from lumos.models import load_pretrained

    assert main(["export", str(root), str(tmp_path / "out"), "--format", "transformers"]) == 0
    back = load_pretrained(tmp_path / "out")
    for k, v in back.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k
    assert main(["export", str(root), str(root / "inside")]) == 2       # never into its source
    assert main(["export", str(tmp_path / "out"), str(tmp_path / "out")]) == 2


def test_expert_parallel_flag_must_divide_world_size(capsys, tmp_path):
    from lumos.cli.main import main

    status = main(["rl", "train", "--expert-parallel", "3", "--steps", "1", "--warm-start", "0",
                   "--out", str(tmp_path / "run")])
    assert status == 2
    err = capsys.readouterr().err
    assert ("The 'expert_parallel' parameter (--expert-parallel) must be a divisor of the world size (1 processes) "
            "and of the number of experts (2). Got 3 instead.") in err
    assert not (tmp_path / "run").exists()          # checked before the run directory is made

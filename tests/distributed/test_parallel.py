"""FSDP2 / expert-parallel sharding and sharded loading of both checkpoint formats (2 gloo processes)."""

from pathlib import Path

import pytest
import torch
from tests.models._factories import randomize

from lumos.core.errors import LumosError
from lumos.distributed.process_group import spawn
from lumos.models import HybridLM, MiniMaxConfig, load_pretrained, save_pretrained
from lumos.models.checkpoint.sharded import load_sharded


def _config(**kw):
    base = dict(vocab_size=61, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, head_dim=8,
                num_key_value_heads=2, intermediate_size=24, num_local_experts=4, num_experts_per_tok=2,
                attn_type_list=[0, 1, 0], rotary_dim=4, lightning_slope_variant="transformers",
                bos_token_id=1, eos_token_id=2, pad_token_id=0)
    base.update(kw)
    return MiniMaxConfig(**base)


def _ids():
    ids = torch.randint(0, 61, (4, 9), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0                     # left padding in one row
    return ids, mask


def _worker(rank, world, root):
    from lumos.distributed.parallel import gathered_copy, make_mesh

    root = Path(root)
    ids, mask = _ids()
    expected = torch.load(root / "logits.pt", weights_only=True)
    rows = slice(rank * 2, rank * 2 + 2)            # each rank its own rows (EP sends tokens across ranks)
    total = sum(p.numel() * 4 for p in load_pretrained(root / "minimax_m1").parameters())
    for fmt in ("minimax_m1", "transformers"):
        for ep in (1, 2):
            mesh = make_mesh(expert_parallel=ep)
            model = load_pretrained(root / fmt, dtype=torch.float32, device_mesh=mesh, expert_parallel=ep > 1)
            with torch.no_grad():
                out = model(ids[rows], attention_mask=mask[rows])
            torch.testing.assert_close(out, expected[rows], atol=1e-5, rtol=1e-5, msg=f"{fmt} ep={ep}")
            stats = model.load_stats
            assert stats["local_param_bytes"] <= 0.6 * total, (stats, total)
            assert stats["read_bytes"] <= 0.7 * total, (stats, total)
            if ep == 1 and fmt == "transformers":       # the rollout copy: unsharded, same logits
                full = gathered_copy(model)
                with torch.no_grad():
                    torch.testing.assert_close(full(ids, attention_mask=mask), expected, atol=1e-5, rtol=1e-5)


def test_sharded_loading_matches_single_process(tmp_path):
    torch.manual_seed(0)
    model = HybridLM(_config())
    randomize(model, std=0.2)
    save_pretrained(model, tmp_path / "minimax_m1", format="minimax_m1", max_shard_size=20_000)
    save_pretrained(model, tmp_path / "transformers", format="transformers", max_shard_size=20_000)
    ids, mask = _ids()
    with torch.no_grad():
        logits = load_pretrained(tmp_path / "minimax_m1")(ids, attention_mask=mask)
        torch.testing.assert_close(load_pretrained(tmp_path / "transformers")(ids, attention_mask=mask),
                                   logits, atol=1e-5, rtol=1e-5)
    torch.save(logits, tmp_path / "logits.pt")
    spawn(_worker, nprocs=2, args=(str(tmp_path),))


def test_sharded_loading_reports_bad_keys_before_reading(tmp_path):
    from lumos.core.io import load_tensors, save_tensors

    model = HybridLM(_config(num_hidden_layers=1, attn_type_list=[0]))
    save_pretrained(model, tmp_path, max_shard_size=10**9)
    shard = next(tmp_path.glob("model-*.safetensors"))
    t = load_tensors(shard)
    t.pop("model.norm.weight")
    t["model.extra.weight"] = torch.zeros(2)
    t["lm_head.weight"] = torch.zeros(3, 3)
    save_tensors(shard, t)
    index = (tmp_path / "model.safetensors.index.json")
    index.unlink()
    shard.rename(tmp_path / "model.safetensors")
    with pytest.raises(LumosError, match="missing keys: model.norm.weight.*unexpected keys: model.extra.weight"
                       ".*mis-shaped keys: lm_head.weight"):
        load_sharded(tmp_path, mesh=None)      # the check runs before any mesh or tensor is touched


def test_a_mesh_whose_process_group_was_destroyed_is_one_clear_error(tmp_path):
    """Issue 27: load_pretrained / shard_model with a mesh made before destroy_process_group() was a raw
    RuntimeError ("Could not resolve the process group"); now one LumosError line, in a fresh process."""
    import subprocess
    import sys
    import textwrap

    from lumos.distributed.process_group import free_port

    code = textwrap.dedent(f"""
        import os, torch.distributed as dist
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="{free_port()}", RANK="0", WORLD_SIZE="1")
        from lumos.core.errors import LumosError
        from lumos.distributed import make_mesh, shard_model
        from lumos.models import load_pretrained, save_pretrained, tiny_hybrid
        save_pretrained(tiny_hybrid(), r"{tmp_path / 'm'}")
        mesh = make_mesh()
        dist.destroy_process_group()
        for call in (lambda: load_pretrained(r"{tmp_path / 'm'}", device_mesh=mesh),
                     lambda: shard_model(tiny_hybrid(), mesh)):
            try:
                call()
            except LumosError as exc:
                assert "destroyed" in str(exc) and "\\n" not in str(exc), exc
            else:
                raise SystemExit("no error")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]

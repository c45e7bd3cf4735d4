"""models/checkpoint/sharded.py: sharded loading in a world of one process equals the single-process load (the
two-process cases, FSDP2 and expert parallel, are in tests/distributed/test_parallel.py)."""

from pathlib import Path

import torch

from lumos.distributed.process_group import spawn
from lumos.models import HybridLM, MiniMaxConfig, load_pretrained, save_pretrained
from lumos.models.checkpoint.sharded import load_sharded, local_rows


def test_local_rows_of_a_plain_tensor_is_the_whole_tensor():
    t = torch.arange(12.0).reshape(4, 3)
    local, a, b = local_rows(t)
    assert local.data_ptr() == t.data_ptr() and (a, b) == (0, 4)


def _worker(rank, world, root):
    from torch.distributed.tensor import DTensor

    from lumos.distributed.parallel import make_mesh

    root = Path(root)
    want = load_pretrained(root, dtype=torch.float32).state_dict()
    model = load_sharded(root, make_mesh(), dtype=torch.float32)
    got = {k: (v.full_tensor() if isinstance(v, DTensor) else v) for k, v in model.state_dict().items()}
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k
    total = sum(f.stat().st_size for f in root.glob("*.safetensors"))
    assert 0 < model.load_stats["read_bytes"] <= total  # every byte read at most once in a world of one


def test_world_of_one_equals_the_single_process_load(tmp_path):
    torch.manual_seed(0)
    cfg = MiniMaxConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        num_key_value_heads=1, intermediate_size=16, num_local_experts=2, bos_token_id=1,
                        eos_token_id=2, pad_token_id=0)
    save_pretrained(HybridLM(cfg), tmp_path, max_shard_size=8_000)
    assert len(list(tmp_path.glob("*.safetensors"))) >= 2  # keys spread over several shards
    spawn(_worker, nprocs=1, args=(str(tmp_path),))

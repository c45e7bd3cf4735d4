"""Expert-parallel MoE (all-to-all over 4 gloo processes) against the dense grouped-dispatch MoE, float64."""

import copy

import pytest
import torch

from lumos.distributed.process_group import spawn
from lumos.layers.moe import SparseMoE

H, I, E = 6, 5, 4


def _grad(p):
    from lumos.distributed.parallel import local_shard

    return torch.zeros_like(local_shard(p)) if p.grad is None else local_shard(p.grad)


def _case(rank, world, mesh, counts, top_k, skew, seed):
    import torch.distributed as dist

    from lumos.distributed.expert_parallel import ExpertParallelMoE

    torch.manual_seed(seed)
    dense = SparseMoE(H, I, E, top_k).double()
    dense.reset_parameters(std=0.5)
    if skew:  # a large gate bias towards experts 0 and 1: the ranks holding experts 2, 3 receive no tokens
        with torch.no_grad():
            dense.gate.weight[:2] += 50.0 * torch.sign(dense.gate.weight[:2])
            dense.gate.weight[:2] *= 0
            dense.gate.weight[2:] = -50.0
    xs = [torch.randn(1, n, H, dtype=torch.float64) for n in counts]
    xs = [x.abs() + 0.1 for x in xs] if skew else xs   # positive inputs: skewed logits stay skewed
    gs = [torch.randn(1, n, H, dtype=torch.float64) for n in counts]
    x_all = torch.cat(xs, 1).requires_grad_(True)
    out_all, _ = dense(x_all)
    (out_all * torch.cat(gs, 1)).sum().backward()

    ep = ExpertParallelMoE.from_dense(copy.deepcopy(dense), mesh)
    x = xs[rank].clone().requires_grad_(True)
    out, _ = ep(x)
    (out * gs[rank]).sum().backward()
    lo = sum(counts[:rank])
    torch.testing.assert_close(out, out_all[:, lo:lo + counts[rank]], atol=1e-10, rtol=0)
    torch.testing.assert_close(x.grad, x_all.grad[:, lo:lo + counts[rank]], atol=1e-10, rtol=0)
    g_gate = ep.gate.weight.grad.clone()
    dist.all_reduce(g_gate)
    torch.testing.assert_close(g_gate, dense.gate.weight.grad, atol=1e-10, rtol=0)
    ep_rank, n_local = mesh["ep"].get_local_rank(), E // mesh["ep"].size()
    for name in ("w1", "w2", "w3"):
        ref = _grad(getattr(dense, name))[ep_rank * n_local:(ep_rank + 1) * n_local]
        got = _grad(getattr(ep, name)).clone()
        if mesh["dp"].size() > 1:
            dist.all_reduce(got, group=mesh["dp"].get_group())
        torch.testing.assert_close(got, ref, atol=1e-10, rtol=0)
    assert ep.last_sent_rows == counts[rank] * top_k
    if skew:
        assert (ep.last_received_rows == 0) == (ep_rank >= 2)


def _sft(model):
    from lumos.rl.sft import SFTConfig, sft_warm_start
    from lumos.rl.tasks import get_task

    return sft_warm_start(model, get_task("addition", digits=1), SFTConfig(steps=3, batch_size=8, lr=3e-3, seed=0))


def _model():
    from lumos.models import tiny_hybrid

    return tiny_hybrid(32, 2, seed=0, num_local_experts=4, num_experts_per_tok=2)


def _worker(rank, world, out):
    from torch.distributed.device_mesh import init_device_mesh

    from lumos.rl.experiment import shard_for_training

    mesh = init_device_mesh("cpu", (1, world), mesh_dim_names=("dp", "ep"))
    _case(rank, world, mesh, counts=[5, 1, 7, 3], top_k=2, skew=False, seed=0)     # uneven token counts
    _case(rank, world, mesh, counts=[4, 0, 6, 2], top_k=1, skew=False, seed=1)     # a rank with no tokens
    _case(rank, world, mesh, counts=[3, 2, 4, 1], top_k=2, skew=True, seed=2)      # ranks 2, 3 receive none
    mesh2 = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "ep"))           # experts replicated over dp
    _case(rank, world, mesh2, counts=[2, 5, 3, 4], top_k=2, skew=False, seed=3)
    # the whole model on the same 4 processes (run here to share their start-up): HSDP over ("dp", "ep") = (2, 2),
    # experts replicated over "dp" (their gradients all-reduced there), 3 SFT steps
    losses = _sft(shard_for_training(_model(), expert_parallel=2))
    if rank == 0:
        torch.save(losses, f"{out}/losses.pt")


def test_expert_parallel_equals_dense_moe(tmp_path):
    spawn(_worker, nprocs=4, args=(str(tmp_path),))
    got = torch.load(tmp_path / "losses.pt", weights_only=True)
    want = _sft(_model())
    assert max(abs(a - b) for a, b in zip(got, want)) < 1e-6, (got, want)


def test_expert_parallel_must_divide():
    from lumos.core.errors import LumosError
    from lumos.distributed.parallel import check_expert_parallel

    with pytest.raises(LumosError, match=r"^The 'expert_parallel' parameter must be a divisor of the world size "
                       r"\(4 processes\)\. Got 3 instead\."):
        check_expert_parallel(3, 4, 6)
    with pytest.raises(LumosError, match="must be a divisor of the number of experts"):
        check_expert_parallel(2, 4, 3)
    check_expert_parallel(2, 4, 4)

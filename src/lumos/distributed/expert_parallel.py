"""Expert-parallel MoE: each rank of an "ep" process group holds ``E / ep`` experts; tokens travel by all-to-all.

Same maths as :class:`~lumos.layers.moe.SparseMoE` (whose grouped dispatch is the oracle, and whose per-token
twin lives in ``tests/layers/test_moe.py``): router logits = gate(x), p = softmax in float32, top-k, weights
renormalised, out = Σ_k w_k · expert_k(x). Expert ``e`` lives on group rank ``e // (E / ep)``.

Dispatch of one layer on ``ep`` ranks (N local tokens, k experts per token, H hidden):

1. sort the N·k (token, expert) assignments by expert (hence by destination rank);
2. exchange the per-expert counts (``all_to_all_single`` of ep × E/ep ints), then the token rows
   (``all_to_all_single`` with uneven splits; a rank may send or receive nothing);
3. each local expert runs once on the rows it received (in source-rank order, regrouped by expert);
4. the results go back by the inverse all-to-all and are combined on the token's own rank with its router
   weights (``index_add_``), so the router's gradient never leaves the rank.

The all-to-alls are autograd-aware (torch's functional ``all_to_all_single_autograd``): backward sends the
row gradients the opposite way. Every rank must call forward (and backward) the same number of times.
Each forward records the rows it sent and received (:attr:`ExpertParallelMoE.last_sent_rows`,
``last_received_rows``); the all-to-all volume of a layer is 2 directions × rows × H × bytes, the same again in
backward.

Expert weights are :class:`~torch.distributed.tensor.DTensor` parameters on the ("dp", "ep") mesh with
placements (Replicate, Shard(0)): their local tensor is this rank's (E/ep, ...) slice, and
``torch.distributed.checkpoint`` sees the global (E, ...) tensor, so checkpoints reshard to any world size.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from lumos.core.errors import LumosError, bad_param
from lumos.distributed.process_group import local_shard
from lumos.layers.moe import SparseMoE, swiglu_expert

__all__ = ["ExpertParallelMoE", "expert_parallel_dispatch"]


def expert_parallel_dispatch(flat: torch.Tensor, top_w: torch.Tensor, top_i: torch.Tensor, w1: torch.Tensor,
                             w2: torch.Tensor, w3: torch.Tensor, num_experts: int, group: Any
                             ) -> tuple[torch.Tensor, int, int]:
    """Σ_k top_w · expert_{top_i}(flat) with the experts spread over ``group``; returns (out (N, H), rows sent,
    rows received).

    Args:
        flat: (N, H) this rank's tokens.
        top_w: (N, k) float32 router weights; top_i: (N, k) long global expert ids.
        w1, w3: (E/ep, I, H) and w2: (E/ep, H, I), the local experts (global ids rank·E/ep ...).
        num_experts: E.
        group: the "ep" process group.
    """
    import torch.distributed as dist
    from torch.distributed._functional_collectives import all_to_all_single_autograd, wait_tensor

    ep = dist.get_world_size(group)
    n_local = num_experts // ep
    k = top_i.shape[1]
    expert_of = top_i.reshape(-1)                                                 # (N·k,)
    order = torch.argsort(expert_of, stable=True)
    token_of = order // k
    weight_of = top_w.reshape(-1)[order]
    per_expert = torch.bincount(expert_of, minlength=num_experts)                 # (E,) rows for each expert
    recv_per_expert = torch.empty_like(per_expert)
    dist.all_to_all_single(recv_per_expert, per_expert, group=group)             # (ep · E/ep,) by source rank
    send_splits = per_expert.view(ep, n_local).sum(1).tolist()
    recv_counts = recv_per_expert.view(ep, n_local)                               # [source, local expert]
    recv_splits = recv_counts.sum(1).tolist()
    recv = wait_tensor(all_to_all_single_autograd(flat[token_of], recv_splits, send_splits, group))
    # rows arrive grouped by source rank, each source's rows sorted by expert: regroup by local expert
    local_expert = torch.repeat_interleave(torch.arange(n_local, device=flat.device).repeat(ep),
                                           recv_counts.reshape(-1))
    regroup = torch.argsort(local_expert, stable=True)
    counts = torch.bincount(local_expert, minlength=n_local).tolist()
    x = recv[regroup]
    outs = []
    start = 0
    for j, c in enumerate(counts):   # every local expert runs, also on zero rows, so each weight has a gradient
        xe = x[start:start + c]
        outs.append(swiglu_expert(xe, w1[j], w2[j], w3[j]))
        start += c
    y = torch.cat(outs) if outs else x
    y = torch.empty_like(y).index_copy(0, regroup, y)                            # back to arrival order
    back = wait_tensor(all_to_all_single_autograd(y, send_splits, recv_splits, group))
    out = torch.zeros_like(flat)
    out.index_add_(0, token_of, back * weight_of[:, None].to(flat.dtype))
    return out, int(sum(send_splits)), int(sum(recv_splits))


class ExpertParallelMoE(SparseMoE):
    """:class:`SparseMoE` whose experts are spread over the "ep" dimension of a ("dp", "ep") device mesh.

    Build it with :meth:`from_dense` (or let :func:`lumos.distributed.parallel.shard_model` do it): parameter names
    and the router are unchanged; ``w1``/``w2``/``w3`` become DTensors (Replicate over "dp", Shard(0) over "ep").
    """

    ep_group: Any
    last_sent_rows: int
    last_received_rows: int

    @classmethod
    def from_dense(cls, moe: SparseMoE, mesh: Any) -> ExpertParallelMoE:
        """Convert ``moe`` in place (also on the meta device) to hold only this rank's experts of ``mesh["ep"]``."""
        from torch.distributed.tensor import DTensor, Replicate, Shard

        ep_mesh = mesh["ep"]
        ep = ep_mesh.size()
        if moe.num_experts % ep:
            raise bad_param("expert_parallel", f"a divisor of the number of experts ({moe.num_experts})", ep,
                            owner="ExpertParallelMoE")
        r = ep_mesh.get_local_rank()
        n = moe.num_experts // ep
        moe.__class__ = cls   # in place: the layer keeps its name, router and hooks; only the experts change
        ep_moe = cast(ExpertParallelMoE, moe)  # the same object, now of this class
        for name in ("w1", "w2", "w3"):
            full = getattr(ep_moe, name)
            local = full.detach()[r * n:(r + 1) * n].clone()
            dt = DTensor.from_local(local, mesh, [Replicate(), Shard(0)], run_check=False)
            setattr(ep_moe, name, nn.Parameter(dt, requires_grad=full.requires_grad))
        ep_moe.ep_group = ep_mesh.get_group()
        ep_moe.last_sent_rows = ep_moe.last_received_rows = 0
        return ep_moe

    def _dispatch(self, flat: torch.Tensor, top_w: torch.Tensor, top_i: torch.Tensor) -> torch.Tensor:
        """:meth:`SparseMoE.forward`'s expert step, over the "ep" group (records the rows sent and received)."""
        out, self.last_sent_rows, self.last_received_rows = expert_parallel_dispatch(
            flat, top_w, top_i, local_shard(self.w1), local_shard(self.w2), local_shard(self.w3), self.num_experts,
            self.ep_group)
        return out

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        raise LumosError("ExpertParallelMoE holds only its local experts; call the layer, not expert(e).")

    def extra_repr(self) -> str:
        return f"experts={self.num_experts} over ep, top_k={self.top_k}"

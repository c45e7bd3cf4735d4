"""Sharding a :class:`~lumos.models.minimax.modeling.HybridLM` with PyTorch's own engine: DeviceMesh, DTensor, FSDP2.

* :func:`make_mesh` — a 1-D ("dp",) mesh, or a 2-D ("dp", "ep") mesh for expert parallelism, with clear errors
  when the expert-parallel size does not divide the world size or the expert count.
* :func:`shard_model` — ``fully_shard`` on every decoder layer and on the root. With ``expert_parallel=True``
  each MoE becomes an :class:`~lumos.distributed.expert_parallel.ExpertParallelMoE` first: the experts of a layer are
  spread over "ep" (DTensors, Replicate over "dp", Shard(0) over "ep", left out of FSDP), every other parameter
  is sharded by FSDP2 over all ranks (HSDP on the 2-D mesh: sharded over "ep", replicated over "dp").
* Gradient reduction: ``grad_reduce="sum"`` makes FSDP2 sum gradients over ranks (lumos' trainers normalise
  losses by global counts), ``"mean"`` keeps FSDP2's average. Experts get their tokens' gradients through the
  all-to-all; when "dp" > 1 a post-accumulate hook all-reduces them over "dp" (FSDP2 does not own them).
* :func:`clip_grad_norm` — the global gradient norm over parameters living on different meshes.
* :func:`gathered_copy` — a plain, unsharded copy of the model on every rank (for rollouts; one all-gather of
  every parameter; see the README's "Scaling out" for the cost).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from lumos.core.errors import LumosError, bad_param
from lumos.core.validation import check_positive_int
from lumos.distributed.process_group import local_shard

if TYPE_CHECKING:
    from lumos.models.minimax.modeling import HybridLM

__all__ = ["make_mesh", "shard_model", "is_sharded", "clip_grad_norm", "gathered_copy", "check_expert_parallel",
           "check_mesh", "local_shard"]


def check_expert_parallel(ep: int, world: int, num_experts: int | None = None) -> None:
    """Raise one clear error when ``ep`` is not a positive divisor of ``world`` (and of ``num_experts``)."""
    problems = []
    check_positive_int(ep, "expert_parallel")
    if world % ep:
        problems.append(f"the world size ({world} processes)")
    if num_experts is not None and num_experts % ep:
        problems.append(f"the number of experts ({num_experts})")
    if problems:
        raise bad_param("expert_parallel", "a divisor of " + " and of ".join(problems), ep,
                        fix="Choose a common divisor, or change the number of processes.")


def make_mesh(expert_parallel: int = 1, num_experts: int | None = None, device_type: str | None = None) -> Any:
    """The device mesh of the current process group: ("dp",) or, with ``expert_parallel`` > 1, ("dp", "ep")."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    check_expert_parallel(expert_parallel, 1 if not dist.is_initialized() else dist.get_world_size(), num_experts)
    if not dist.is_initialized():   # one process: a world of 1, so the sharded code paths run unchanged
        _init_single_process(device_type)
    world = dist.get_world_size()
    check_expert_parallel(expert_parallel, world, num_experts)
    device_type = device_type or ("cuda" if dist.get_backend() == "nccl" else "cpu")
    if expert_parallel == 1:
        return init_device_mesh(device_type, (world,), mesh_dim_names=("dp",))
    return init_device_mesh(device_type, (world // expert_parallel, expert_parallel), mesh_dim_names=("dp", "ep"))


def _init_single_process(device_type: str | None) -> None:
    import os

    import torch.distributed as dist

    from lumos.distributed.process_group import free_port

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    cuda = (device_type or ("cuda" if torch.cuda.is_available() else "cpu")) == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo", rank=0, world_size=1)
    if cuda:
        torch.cuda.set_device(0)


def is_sharded(model: nn.Module) -> bool:
    """True when ``model`` went through :func:`shard_model` (its root is an FSDP2 module)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def check_mesh(mesh: Any, owner: str) -> None:
    """``mesh`` must be a torch ``DeviceMesh`` whose process group is still alive (not destroyed since it was made)."""
    import torch.distributed as tdist
    from torch.distributed.device_mesh import DeviceMesh

    if not isinstance(mesh, DeviceMesh):
        raise bad_param("device_mesh", "a torch DeviceMesh (lumos.distributed.make_mesh) or None",
                        repr(mesh) if isinstance(mesh, str) else type(mesh).__name__, owner=owner, type_error=True,
                        fix="Build one with make_mesh(expert_parallel, num_experts=...) under torchrun.")
    try:
        alive = tdist.is_initialized() and all(mesh.get_group(d) is not None for d in range(mesh.ndim))
    except (RuntimeError, ValueError, KeyError):
        alive = False
    if not alive:
        raise LumosError(f"{owner}: the device mesh's process group was destroyed (or never initialised); build a new "
                         "mesh with lumos.distributed.make_mesh() after init_distributed().")


def shard_model(model: nn.Module, mesh: Any, *, expert_parallel: bool = False, reshard_after_forward: bool = True,
                grad_reduce: str = "mean") -> nn.Module:
    """FSDP2 on every decoder layer and the root of a ``HybridLM`` (in place, also on the meta device).

    Args:
        model: a :class:`~lumos.models.minimax.modeling.HybridLM` (not yet sharded).
        mesh: from :func:`make_mesh`: 1-D ("dp",), or 2-D ("dp", "ep") for ``expert_parallel``.
        expert_parallel: spread each layer's experts over "ep" with all-to-all token dispatch.
        reshard_after_forward: free each layer's gathered parameters after its forward (FSDP2's ZeRO-3);
            False keeps them until backward (ZeRO-2: less communication, more memory).
        grad_reduce: "mean" (FSDP2's default: gradients averaged over ranks) or "sum".

    Returns the same module (now an ``FSDPModule``); parameters are DTensors.
    """
    check_mesh(mesh, "shard_model")
    from torch.distributed.fsdp import FSDPModule, fully_shard

    from lumos.distributed.expert_parallel import ExpertParallelMoE

    if is_sharded(model):
        raise LumosError("shard_model: the model is already sharded.")
    if grad_reduce not in ("mean", "sum"):
        raise LumosError(f"The 'grad_reduce' parameter of shard_model must be 'mean' or 'sum'. Got {grad_reduce!r}.")
    hybrid = cast("HybridLM", model)                    # the documented input: a lumos HybridLM
    layers: list[Any] = list(hybrid.model.layers)
    names = tuple(mesh.mesh_dim_names or ())
    experts: dict[int, set[nn.Parameter]] = {}
    world = mesh.size()
    if expert_parallel:
        if names != ("dp", "ep"):
            raise LumosError(f"expert_parallel=True needs a ('dp', 'ep') mesh (make_mesh(expert_parallel=N)); got "
                             f"mesh dims {names}.")
        check_expert_parallel(mesh["ep"].size(), world, hybrid.config.num_local_experts)
        for i, layer in enumerate(layers):
            moe = ExpertParallelMoE.from_dense(layer.block_sparse_moe, mesh)
            experts[i] = {moe.w1, moe.w2, moe.w3}
        fsdp_mesh = mesh              # HSDP: shard over "ep", replicate over "dp" → reduced over every rank
    else:
        if mesh.ndim != 1:
            raise LumosError(f"shard_model without expert_parallel takes a 1-D mesh; got dims {names}.")
        fsdp_mesh = mesh
    kw: dict[str, Any] = {"mesh": fsdp_mesh, "reshard_after_forward": reshard_after_forward}
    for i, layer in enumerate(layers):
        fully_shard(layer, ignored_params=experts.get(i), **kw)
    fully_shard(model, **kw)
    model.lumos_grad_reduce = grad_reduce  # pyright: ignore[reportArgumentType] - Module keeps plain attributes too
    if grad_reduce == "sum":
        for m in model.modules():
            if isinstance(m, FSDPModule):
                m.set_gradient_divide_factor(1.0)
                m.set_force_sum_reduction_for_comms(True)   # plain SUM (gloo has no PREMUL_SUM)
    if expert_parallel and mesh["dp"].size() > 1:
        _reduce_experts_over_dp(experts, mesh["dp"].get_group(), world if grad_reduce == "mean" else 1)
    elif expert_parallel and grad_reduce == "mean":
        _reduce_experts_over_dp(experts, None, world)
    return model


def _reduce_experts_over_dp(experts: dict[int, set[nn.Parameter]], group: Any, divide: int) -> None:
    import torch.distributed as dist

    def hook(p: torch.Tensor) -> None:
        if p.grad is None:  # a post-accumulate-grad hook runs after the gradient is set
            return
        g = local_shard(p.grad)
        if group is not None:
            dist.all_reduce(g, group=group)
        if divide != 1:
            g.div_(divide)

    for params in experts.values():
        for p in params:
            p.register_post_accumulate_grad_hook(hook)


def clip_grad_norm(params: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` for parameters on several meshes (FSDP2 shards, expert DTensors, plain tensors):
    the global L2 norm of all gradients, each DTensor's norm reduced over its own mesh; scales in place."""
    from torch.distributed.tensor import DTensor

    grads = [p.grad for p in params if p.grad is not None]
    sq = torch.zeros((), dtype=torch.float64)
    for g in grads:
        n = torch.linalg.vector_norm(g.float() if not isinstance(g, DTensor) else g, 2)
        n = n.full_tensor() if isinstance(n, DTensor) else n
        sq += n.double().cpu() ** 2
    total = sq.sqrt()
    if math.isfinite(max_norm) and float(total) > max_norm:
        coef = max_norm / (float(total) + 1e-6)
        for g in grads:
            local_shard(g).mul_(coef)
    return total.float()


@torch.no_grad()
def gathered_copy(model: nn.Module) -> nn.Module:
    """An unsharded, ordinary copy of a sharded ``HybridLM`` on every rank (all-gather of every parameter).

    Used for rollouts: decoding then runs with no collective per token, so ranks may stop at different lengths.
    """
    from torch.distributed.tensor import DTensor

    from lumos.models.minimax.modeling import HybridLM

    base = cast("HybridLM", model)
    state = {}
    for name, p in model.named_parameters():
        state[name] = p.full_tensor() if isinstance(p, DTensor) else p.detach().clone()
    device = next(iter(state.values())).device
    copy = HybridLM.empty(base.config, dtype=base.dtype, device=device)
    missing, unexpected = copy.load_state_dict(state, strict=False)   # buffers are derived (reset_buffers)
    missing = [k for k in missing if not (base.config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise LumosError(f"gathered_copy: parameters do not match the model ({missing[:3]}, {unexpected[:3]}).")
    copy.lm_head_fp32 = base.lm_head_fp32
    return copy.eval()

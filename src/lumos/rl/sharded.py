"""What the RL trainer and the SFT warm start do differently on a model sharded with FSDP2 / expert parallelism.

* Gradients: FSDP2 reduce-scatters them during backward (the model is sharded with ``grad_reduce="sum"`` and
  losses are normalised by global counts), so no hand-written all-reduce; the norm is taken over meshes
  (:func:`lumos.models.parallel.clip_grad_norm`).
* Collectives must match: every rank runs a forward and backward for every minibatch, a rank without rows in it
  runs :func:`idle_step` (one padding token, loss × 0).
* The MoE load-balancing loss is pooled over ranks exactly (:func:`global_aux_loss`): the single-process loss
  E · Σ_e (C_e / R)(P_e / R) is linear in the probability sums P once the counts C and rows R are all-reduced, so
  each rank adds E · Σ_e C_e · P_e,local / R² and the ranks' gradients sum to the single-process gradient.
* Rollouts, old/reference log-probs and evaluation run on :func:`~lumos.models.parallel.gathered_copy`, an
  unsharded copy made once per RL step (one all-gather of the parameters; decoding then needs no collectives,
  so ranks may stop generating at different lengths).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lumos.core import distributed as dist
from lumos.core.errors import LumosError
from lumos.rl.policy import Policy, Rollout

__all__ = ["is_sharded", "global_aux_loss", "idle_step", "check_sharded_model", "gathered_policy"]


def is_sharded(model: nn.Module) -> bool:
    from lumos.models.parallel import is_sharded as sharded

    return sharded(model)


def check_sharded_model(model: nn.Module) -> None:
    """Trainers sum gradients over ranks: the model must be sharded with ``grad_reduce="sum"``."""
    if getattr(model, "lumos_grad_reduce", None) != "sum":
        raise LumosError("A sharded model passed to a lumos trainer must be sharded with "
                         "shard_model(..., grad_reduce='sum'): the trainers normalise losses by global counts.")


def global_aux_loss(model: nn.Module, weight: float = 1.0) -> torch.Tensor | None:
    """This rank's share of the MoE load-balancing loss pooled over all ranks (see module docstring);
    ``weight`` 0 contributes nothing (an idle rank). A collective: every rank calls it."""
    routing = getattr(model, "_routing", None)
    if not routing:
        return None
    cfg = model.config  # type: ignore[attr-defined]
    stats = [r.stats() for r in routing]
    counts = torch.stack([s.counts for s in stats]).sum(0)
    probs = torch.stack([s.prob_sum for s in stats]).sum(0)
    rows = torch.stack([s.rows for s in stats]).sum()
    glob = dist.all_reduce_sum(torch.cat([counts.detach(), rows.detach()[None]]).double() * weight)
    c, r = glob[:-1].to(probs.dtype), glob[-1].to(probs.dtype).clamp_min(1.0)
    return cfg.router_aux_loss_coef * cfg.num_local_experts * torch.sum(c * probs) / (r * r) * weight


def idle_step(policy: Policy, temperature: float) -> None:
    """A forward and backward on one padding token with zero loss, so FSDP2's and the MoE's collectives
    run on a rank that has no rows in this minibatch."""
    pad = policy.pad_token_id
    ro = Rollout(torch.full((1, 1), pad, dtype=torch.long), torch.ones(1, 1, dtype=torch.long),
                 torch.full((1, 1), pad, dtype=torch.long), torch.zeros(1, 1, dtype=torch.bool),
                 torch.zeros(1, 1), ["eos"])
    logp, _ = policy.token_logprobs(ro, temperature)
    loss = logp.sum() * 0.0
    aux = global_aux_loss(policy.model, weight=0.0)
    if aux is not None:
        loss = loss + aux
    loss.backward()


def gathered_policy(policy: Policy, **kw: Any) -> Policy:
    """A policy over an unsharded copy of ``policy.model`` (a collective: every rank calls it)."""
    from lumos.models.parallel import gathered_copy
    from lumos.rl.policy import HybridPolicy

    return HybridPolicy(gathered_copy(policy.model), policy.eos_token_id, policy.pad_token_id, **kw)

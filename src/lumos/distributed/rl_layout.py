"""What the RL trainer and the SFT warm start do differently on a model sharded with FSDP2 / expert parallelism.

:func:`layout` gives the trainers one object per model, :class:`Replicated` or :class:`Sharded`, that owns every
difference below; the trainers call it and never branch on sharding themselves.

* Gradients: FSDP2 reduce-scatters them during backward (the model is sharded with ``grad_reduce="sum"`` and
  losses are normalised by global counts), so no hand-written all-reduce; the norm is taken over meshes
  (:func:`lumos.distributed.parallel.clip_grad_norm`).
* Collectives must match: every rank runs a forward and backward for every minibatch, a rank without rows in it
  runs :func:`idle_step` (one padding token, loss × 0).
* The MoE load-balancing loss is pooled over ranks exactly (:func:`global_aux_loss`): the single-process loss
  E · Σ_e (C_e / R)(P_e / R) is linear in the probability sums P once the counts C and rows R are all-reduced, so
  each rank adds E · Σ_e C_e · P_e,local / R² and the ranks' gradients sum to the single-process gradient.
* Rollouts, old/reference log-probs and evaluation run on :func:`~lumos.distributed.parallel.gathered_copy`, an
  unsharded copy made once per RL step (one all-gather of the parameters; decoding then needs no collectives,
  so ranks may stop generating at different lengths).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from lumos.core.errors import LumosError
from lumos.distributed import process_group as dist
from lumos.layers.moe import load_balancing_loss

if TYPE_CHECKING:  # lumos.rl imports this module; the RL types are imported where they are built
    from lumos.rl.policy import Policy

__all__ = ["is_sharded", "global_aux_loss", "idle_step", "check_sharded_model", "gathered_policy", "layout",
           "Replicated", "Sharded"]


def is_sharded(model: nn.Module) -> bool:
    from lumos.distributed.parallel import is_sharded as sharded

    return sharded(model)


def check_sharded_model(model: nn.Module) -> None:
    """Trainers sum gradients over ranks: the model must be sharded with ``grad_reduce="sum"``."""
    if getattr(model, "lumos_grad_reduce", None) != "sum":
        raise LumosError("A sharded model passed to a lumos trainer must be sharded with "
                         "shard_model(..., grad_reduce='sum'): the trainers normalise losses by global counts.")


def global_aux_loss(model: nn.Module, weight: float = 1.0) -> torch.Tensor | None:
    """This rank's share of the MoE load-balancing loss pooled over all ranks (see module docstring);
    ``weight`` 0 contributes nothing (an idle rank). A collective: every rank calls it."""
    router_stats = getattr(model, "router_stats", None)  # lumos HybridLM; other models have no MoE statistics
    stats = cast("list[Any]", router_stats()) if callable(router_stats) else []   # HybridLM.router_stats()
    if not stats:
        return None
    cfg: Any = model.config
    loss = load_balancing_loss(stats, cfg.num_local_experts, reduce=lambda t: dist.all_reduce_sum(t * weight))
    return cfg.router_aux_loss_coef * loss * weight


def idle_step(policy: Policy, temperature: float) -> None:
    """A forward and backward on one padding token with zero loss, so FSDP2's and the MoE's collectives
    run on a rank that has no rows in this minibatch."""
    from lumos.rl.policy import Rollout

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
    from lumos.distributed.parallel import gathered_copy
    from lumos.rl.policy import HybridPolicy

    return HybridPolicy(gathered_copy(policy.model), policy.eos_token_id, policy.pad_token_id, **kw)


class Replicated:
    """Every process holds the whole model (one process, or data parallelism): gradients are all-reduced
    here, rollouts use the policy itself, checkpoints are one file written by rank 0."""

    sharded = False

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def rollout_policy(self, updates: int, compile: bool = False) -> Policy:
        """The policy that samples after ``updates`` optimizer steps."""
        return self.policy

    def invalidate(self) -> None:
        """Forget any copy made for rollouts (the weights changed outside the optimizer, e.g. a resume)."""

    def reference_model(self) -> nn.Module:
        """A copy of the model as it is now (the KL reference)."""
        from lumos.rl.policy import clone_model

        return clone_model(self.policy.model)

    def aux_loss(self, fraction: float = 1.0) -> torch.Tensor | None:
        """The MoE load-balancing loss of the last forward, weighted by this process's ``fraction`` of the
        rows (the processes' losses then sum to the whole batch's)."""
        aux = self.policy.aux_loss()
        return aux * fraction if aux is not None else None

    def idle(self, temperature: float) -> None:
        """What a process with no rows in a minibatch runs (nothing: the all-reduce brings its zeros)."""

    def reduce_gradients(self, params: list[nn.Parameter]) -> None:
        """Sum the processes' gradients (a parameter without one counts as zeros)."""
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce_sum(p.grad)

    def clip(self, params: list[nn.Parameter], max_norm: float) -> float:
        """Clip the gradients' global norm to ``max_norm``; returns the norm before clipping."""
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))


class Sharded(Replicated):
    """A model sharded with FSDP2 / expert parallelism (``grad_reduce="sum"``): FSDP2 reduce-scatters the
    gradients during backward, the norm is taken over meshes, the load-balancing loss is pooled over ranks,
    an idle rank still runs the collectives, and rollouts use an unsharded copy refreshed after updates."""

    sharded = True

    def __init__(self, policy: Policy) -> None:
        check_sharded_model(policy.model)
        super().__init__(policy)
        self._copy: tuple[int, Policy] | None = None   # (optimizer steps taken, unsharded rollout policy)

    def rollout_policy(self, updates: int, compile: bool = False) -> Policy:
        if self._copy is None or self._copy[0] != updates:
            self._copy = (updates, gathered_policy(self.policy, compile=compile))
        return self._copy[1]

    def invalidate(self) -> None:
        self._copy = None

    def reference_model(self) -> nn.Module:
        return gathered_policy(self.policy).model

    def aux_loss(self, fraction: float = 1.0) -> torch.Tensor | None:
        return global_aux_loss(self.policy.model)

    def idle(self, temperature: float) -> None:
        self.policy.model.train()
        idle_step(self.policy, temperature)

    def reduce_gradients(self, params: list[nn.Parameter]) -> None:
        pass  # reduce-scattered by FSDP2 during backward

    def clip(self, params: list[nn.Parameter], max_norm: float) -> float:
        from lumos.distributed.parallel import clip_grad_norm

        return float(clip_grad_norm(params, max_norm))


def layout(policy: Policy) -> Replicated:
    """:class:`Sharded` for a model sharded with FSDP2 / expert parallelism, else :class:`Replicated`."""
    return Sharded(policy) if is_sharded(policy.model) else Replicated(policy)

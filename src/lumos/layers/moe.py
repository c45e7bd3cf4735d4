"""Sparse mixture of SwiGLU experts with top-k softmax routing (MiniMax / Mixtral style, reference §2.3).

router logits = gate(x) (no bias); p = softmax(logits) in float32; keep the top-k experts and renormalise their
weights to sum to 1; out = Σ_k w_k · expert_k(x) with expert(x) = w2(SiLU(w1·x) ⊙ w3·x).

Dispatch: the N·k (token, expert) assignments are sorted by expert, each expert runs once on its contiguous
group of tokens, and the weighted results are scattered back with ``index_add_`` — a loop over experts,
never over tokens. Its slow twin, :func:`moe_per_token`, loops over tokens and experts (the tests compare them).

Load balancing (Switch Transformer, eqs. 4–6, as transformers' ``load_balancing_loss_func``): with f_e the
fraction of top-k assignments routed to expert e and P_e the mean router probability of e over the real
tokens, loss = E · Σ_e f_e · P_e (equals k when routing is perfectly balanced, as in transformers). Layers return
their sufficient statistics (:class:`RouterStats`) so a model can pool them over layers exactly as
transformers does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.validation import check_float, check_int, check_positive_int
from lumos.layers.decode import decode_linear, gathered_linear

__all__ = ["SparseMoE", "RouterStats", "Routing", "load_balancing_loss", "route", "swiglu_expert", "moe_per_token",
           "GATHER_EXPERT_BYTES"]

#: a decode step reads B·top_k expert matrices by index; beyond B·top_k > num_experts it still does while those
#: reads stay under this many bytes per layer (cache-resident weights: re-reading them is cheap)
GATHER_EXPERT_BYTES = 16 * 2**20


@dataclass
class RouterStats:
    """Per-layer routing statistics: ``counts`` (E,) top-k assignments, ``prob_sum`` (E,) summed router
    probabilities, ``rows`` number of (real) tokens. All float32."""

    counts: torch.Tensor
    prob_sum: torch.Tensor
    rows: torch.Tensor


@dataclass
class Routing:
    """One layer's routing decision: probs (N, E) fp32, top-k indices (N, k), token mask (B, L) or None."""

    probs: torch.Tensor
    top_i: torch.Tensor
    attention_mask: torch.Tensor | None

    def stats(self) -> RouterStats:
        """Assignment counts and probability sums over the real tokens."""
        probs, top_i = self.probs, self.top_i
        if self.attention_mask is None:
            w = probs.new_ones(probs.shape[0])
        else:
            w = self.attention_mask.reshape(-1).to(probs.dtype)
        counts = torch.zeros(probs.shape[1], dtype=torch.float32, device=probs.device)
        counts.scatter_add_(0, top_i.reshape(-1), w.repeat_interleave(top_i.shape[1]))
        return RouterStats(counts=counts, prob_sum=(probs * w[:, None]).sum(0), rows=w.sum())


def route(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Router: (N, E) logits → (probs (N, E) fp32, top-k weights (N, k) fp32 renormalised, indices (N, k))."""
    probs = torch.softmax(logits.float(), dim=-1)
    top_w, top_i = torch.topk(probs, top_k, dim=-1)
    return probs, top_w / top_w.sum(-1, keepdim=True), top_i


def load_balancing_loss(stats: list[RouterStats], num_experts: int,
                        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Switch load-balancing loss pooled over layers: E · Σ_e (C_e / R) · (P_e / R), with C_e = Σ counts_e,
    P_e = Σ prob_sum_e, R = Σ rows over the layers' ``stats``.

    ``reduce`` (e.g. an all-reduce sum over processes) pools C and R over processes too: it receives the
    detached float64 vector (C_1..C_E, R) and returns its sum over processes. The loss is linear in P once C and R
    are global, so with each process adding E · Σ_e C_e · P_e,local / R² the processes' gradients sum to the
    single-process gradient of the whole batch (the sharded RL trainer's pooled loss). Returns a scalar.
    """
    counts = torch.stack([s.counts for s in stats]).sum(0)
    probs = torch.stack([s.prob_sum for s in stats]).sum(0)
    rows = torch.stack([s.rows for s in stats]).sum()
    if reduce is not None:
        pooled = reduce(torch.cat([counts.detach(), rows.detach()[None]]).double())
        counts, rows = pooled[:-1].to(probs.dtype), pooled[-1].to(probs.dtype)
    rows = rows.clamp_min(1.0)
    return num_experts * torch.sum((counts / rows) * (probs / rows))


def swiglu_expert(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, w3: torch.Tensor) -> torch.Tensor:
    """One SwiGLU expert on (n, H) tokens: w2(SiLU(w1·x) ⊙ w3·x), with w1, w3: (I, H) and w2: (H, I)."""
    return F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2)


class SparseMoE(nn.Module):
    """Top-k sparse MoE of SwiGLU experts; expert weights stacked as (E, ...) parameters.

    Args:
        hidden_size: model width H.
        intermediate_size: expert width I.
        num_experts: E.
        top_k: experts per token.
        jitter_noise: in training, multiply the input by U(1 − j, 1 + j) (transformers' ``router_jitter_noise``).

    Parameters: ``gate.weight`` (E, H); ``w1``, ``w3`` (E, I, H); ``w2`` (E, H, I).
    ``forward(x (B, L, H), attention_mask (B, L) or None) -> (out (B, L, H), RouterStats)``.
    """

    def __init__(self, hidden_size: int, intermediate_size: int, num_experts: int, top_k: int,
                 jitter_noise: float = 0.0) -> None:
        super().__init__()
        for name, val in (("hidden_size", hidden_size), ("intermediate_size", intermediate_size),
                          ("num_experts", num_experts)):
            check_positive_int(val, name, owner="SparseMoE")
        check_int(top_k, "top_k", 1, num_experts, owner="SparseMoE")
        check_float(jitter_noise, "jitter_noise", 0.0, owner="SparseMoE")
        self.num_experts, self.top_k, self.jitter_noise = num_experts, top_k, float(jitter_noise)
        self.gate = nn.Linear(hidden_size, num_experts, bias=False)
        self.w1 = nn.Parameter(torch.empty(num_experts, intermediate_size, hidden_size))
        self.w3 = nn.Parameter(torch.empty(num_experts, intermediate_size, hidden_size))
        self.w2 = nn.Parameter(torch.empty(num_experts, hidden_size, intermediate_size))
        self.reset_parameters()

    def reset_parameters(self, std: float = 0.02) -> None:
        for p in (self.w1, self.w2, self.w3, self.gate.weight):
            nn.init.normal_(p, std=std)

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Expert ``e`` on (n, H) tokens: w2(SiLU(w1·x) ⊙ w3·x)."""
        return swiglu_expert(x, self.w1[e], self.w2[e], self.w3[e])

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None, return_stats: bool = True
                ) -> tuple[torch.Tensor, RouterStats | Routing]:
        """Returns (out, RouterStats), or (out, :class:`Routing`) with ``return_stats=False`` (statistics
        computed later with :meth:`Routing.stats`, e.g. only when a loss needs them)."""
        b, n, h = x.shape
        if self.training and self.jitter_noise > 0:
            x = x * torch.empty_like(x).uniform_(1.0 - self.jitter_noise, 1.0 + self.jitter_noise)
        flat = x.reshape(-1, h)
        probs, top_w, top_i = route(self.gate(flat), self.top_k)
        out = self._dispatch(flat, top_w, top_i)
        routing = Routing(probs, top_i, attention_mask)
        return out.view(b, n, h), (routing.stats() if return_stats else routing)

    def gathers_experts(self, batch: int) -> bool:
        """Whether :meth:`decode_step` reads the top-k experts of each of ``batch`` rows by index: while
        B·top_k ≤ num_experts (the latency-bound regime) or B·top_k expert matrices ≤ :data:`GATHER_EXPERT_BYTES`.
        Larger batches of large experts are compute-bound and use the expert-grouped dispatch."""
        e, i, h = self.w1.shape
        reads = batch * self.top_k
        return reads <= e or reads * 3 * i * h * self.w1.element_size() <= GATHER_EXPERT_BYTES

    def decode_step(self, x: torch.Tensor) -> torch.Tensor:
        """One token per row (inference): x (B, H) -> (B, H), the same mixture as :meth:`forward` (no jitter, no
        statistics). Reads only the top-k experts of each row by index (:meth:`gathers_experts`; always under
        ``torch.compile``, where it is one fused pass with no host synchronisation), else the grouped dispatch."""
        _, top_w, top_i = route(decode_linear(x, self.gate.weight), self.top_k)  # (B, k)
        if not torch.compiler.is_compiling() and not self.gathers_experts(x.shape[0]):
            return self._dispatch(x, top_w, top_i)
        a = gathered_linear(x, self.w1, top_i)  # (B, k, I)
        g = gathered_linear(x, self.w3, top_i)
        out = gathered_linear(F.silu(a) * g, self.w2, top_i)  # (B, k, H)
        return (out * top_w[..., None].to(x.dtype)).sum(1)

    def _dispatch(self, flat: torch.Tensor, top_w: torch.Tensor, top_i: torch.Tensor) -> torch.Tensor:
        expert_of = top_i.reshape(-1)  # (N·k,)
        order = torch.argsort(expert_of, stable=True)
        token_of = order // self.top_k
        weight_of = top_w.reshape(-1)[order]
        counts = torch.bincount(expert_of, minlength=self.num_experts).tolist()
        chunks = []
        start = 0
        for e, c in enumerate(counts):  # loop over experts only
            if c:
                idx = token_of[start:start + c]
                chunks.append(self.expert(e, flat[idx]) * weight_of[start:start + c, None].to(flat.dtype))
            start += c
        out = torch.zeros_like(flat)
        if chunks:
            out.index_add_(0, token_of, torch.cat(chunks).to(flat.dtype))
        return out

    def extra_repr(self) -> str:
        e, i, h = self.w1.shape
        return f"experts={e}, top_k={self.top_k}, hidden={h}, intermediate={i}"


def moe_per_token(moe: SparseMoE, x: torch.Tensor) -> torch.Tensor:
    """The slow, obviously correct twin of :meth:`SparseMoE.forward` (its output only): x (..., H) -> (..., H).

    For each token t on its own: p = softmax(gate(x_t)) in float32; the top-k experts by p; w = their p
    renormalised to sum 1; out_t = Σ_k w_k · w2_e(SiLU(w1_e · x_t) ⊙ w3_e · x_t). No jitter (eval mode).
    """
    flat = x.reshape(-1, x.shape[-1])
    out = torch.zeros_like(flat)
    for t in range(flat.shape[0]):
        p = torch.softmax(moe.gate(flat[t]).float(), -1)
        w, idx = torch.topk(p, moe.top_k)
        w = w / w.sum()
        for wi, e in zip(w, idx.tolist()):
            h = F.silu(moe.w1[e] @ flat[t]) * (moe.w3[e] @ flat[t])
            out[t] += wi.to(x.dtype) * (moe.w2[e] @ h)
    return out.view_as(x)

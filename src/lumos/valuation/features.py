"""CHG vectors x_i = ℓ_i·∇_last ℓ_i kept in factored form, and streaming Shapley values from their sums.

Two variants of the last-layer gradient (logits z = W h + b, g = softmax(z) − onehot(y)):

- ``"bias"``: x_i = u_i with u_i = ℓ_i g_i                      (C,)     — the valuation code's choice
- ``"full"``: x_i = [u_i, vec(u_i h_iᵀ)]                          (C + C·D) — bias and weight, the selection code's

The full vector is never built. Per sample we keep (u_i, h_i) — memory O(N·(C + D)) — and per group the sums
s = (Σ u_i, Σ u_i h_iᵀ) and Q = Σ‖x_i‖² — memory O(K·C·D). Then

    ‖x_i‖² = ‖u_i‖²(1 + ‖h_i‖²),   ⟨x_i, (a, A)⟩ = u_iᵀ a + u_iᵀ A h_i,

which is all :func:`lumos.valuation.chg.chg_shapley_from_terms` needs. Sums are additive, so under DDP each
rank accumulates its shard and the sums are all-reduced (``reduce=lumos.distributed.process_group.all_reduce_sum``).
:meth:`CHGFeatures.explicit` builds the full matrix: the oracle for tests and tiny data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lumos.core.errors import bad_param
from lumos.core.validation import check_choice
from lumos.valuation.chg import chg_shapley_from_terms

__all__ = ["VARIANTS", "CHGVector", "CHGFeatures", "CHGSums", "chg_values_streaming"]

VARIANTS = ("bias", "full")


@dataclass
class CHGVector:
    """A vector of the CHG space in factored layout: bias part ``b`` (C,) and weight part ``w`` (C, D) or None."""

    b: torch.Tensor
    w: torch.Tensor | None = None

    def dot(self, other: CHGVector) -> float:
        out = float(self.b @ other.b)
        if self.w is not None and other.w is not None:
            out += float((self.w * other.w).sum())
        return out

    def flat(self) -> torch.Tensor:
        """The explicit (C,) or (C + C·D,) vector."""
        return self.b if self.w is None else torch.cat([self.b, self.w.reshape(-1)])


@dataclass
class CHGFeatures:
    """Factored CHG vectors of N samples.

    Attributes:
        u: (N, C) float64, ℓ_i·g_i.
        h: (N, D) float64 penultimate features for the "full" variant, None for "bias".
    """

    u: torch.Tensor
    h: torch.Tensor | None = None

    @classmethod
    def from_stats(cls, loss: torch.Tensor, g: torch.Tensor, h: torch.Tensor | None, variant: str) -> CHGFeatures:
        """Build from per-sample loss (N,), logit gradient g (N, C) and features h (N, D)."""
        check_choice(variant, "variant", VARIANTS, owner="CHGFeatures")
        u = loss.detach().to(torch.float64)[:, None] * g.detach().to(torch.float64)
        hh = None if variant == "bias" or h is None else h.detach().to(torch.float64).reshape(len(u), -1)
        return cls(u, hh)

    def __len__(self) -> int:
        return self.u.shape[0]

    def sq_norms(self) -> torch.Tensor:
        """(N,) ‖x_i‖²."""
        uu = torch.linalg.vector_norm(self.u, dim=1).square()  # no (N, C) temporary
        return uu if self.h is None else uu * (1.0 + torch.linalg.vector_norm(self.h, dim=1).square())

    def dot(self, v: CHGVector) -> torch.Tensor:
        """(N,) ⟨x_i, v⟩ = u_iᵀ b + u_iᵀ W h_i."""
        out = self.u @ v.b
        if self.h is not None and v.w is not None:
            out = out + (self.h @ v.w.T).mul_(self.u).sum(1)  # u_iᵀ W h_i via an (N, C) temporary
        return out

    def sum(self) -> CHGVector:
        """Σ_i x_i in factored layout."""
        w = None if self.h is None else self.u.T @ self.h  # (C, D), never (N, C, D)
        return CHGVector(self.u.sum(0), w)

    def subset(self, mask: torch.Tensor) -> CHGFeatures:
        return CHGFeatures(self.u[mask], None if self.h is None else self.h[mask])

    def explicit(self) -> torch.Tensor:
        """Oracle: the (N, C) or (N, C + C·D) matrix of x_i (materialises per-sample weight gradients)."""
        if self.h is None:
            return self.u
        return torch.cat([self.u, (self.u[:, :, None] * self.h[:, None, :]).reshape(len(self), -1)], dim=1)


@dataclass
class CHGSums:
    """Per-group sums: counts (K,), s_b (K, C), s_w (K, C, D) or None, q (K,) = Σ‖x_i‖²."""

    counts: torch.Tensor
    s_b: torch.Tensor
    s_w: torch.Tensor | None
    q: torch.Tensor

    @classmethod
    def compute(cls, feats: CHGFeatures, groups: torch.Tensor, n_groups: int) -> CHGSums:
        c, dev = feats.u.shape[1], feats.u.device
        h = feats.h
        d = None if h is None else h.shape[1]
        counts = torch.zeros(n_groups, dtype=torch.float64, device=dev)
        s_b = torch.zeros(n_groups, c, dtype=torch.float64, device=dev)
        s_w = None if d is None else torch.zeros(n_groups, c, d, dtype=torch.float64, device=dev)
        q = torch.zeros(n_groups, dtype=torch.float64, device=dev)
        sq = feats.sq_norms()
        counts.index_add_(0, groups, torch.ones_like(sq))
        s_b.index_add_(0, groups, feats.u)
        q.index_add_(0, groups, sq)
        if s_w is not None and h is not None:  # both or neither
            present = torch.unique(groups).tolist()
            for k in present:
                if len(present) == 1:  # one group: no masked copies of (N, D)
                    s_w[k] = feats.u.T @ h
                else:
                    m = groups == k
                    s_w[k] = feats.u[m].T @ h[m]
        return cls(counts, s_b, s_w, q)

    def reduce(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Apply an in-place sum reduction (e.g. all_reduce_sum) to every statistic."""
        for t in (self.counts, self.s_b, self.s_w, self.q):
            if t is not None:
                fn(t)

    def vector(self, k: int) -> CHGVector:
        return CHGVector(self.s_b[k], None if self.s_w is None else self.s_w[k])


def chg_values_streaming(
    feats: CHGFeatures,
    groups: torch.Tensor | None = None,
    n_groups: int | None = None,
    alpha: CHGVector | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """CHG Shapley values of every sample from the factored features, one game per group.

    Args:
        feats: factored features of the (local) samples.
        groups: (N,) int64 group ids (e.g. class labels for per-class selection); None = one game.
        n_groups: number of groups K (groups must lie in [0, K)); default max(groups) + 1.
        alpha: target direction in factored layout, or None for each group's own mean (fast path).
        reduce: in-place sum across processes of the group statistics (DDP); None = single process.
    Returns:
        (N,) float64 values of the local samples, equal to ``chg_shapley(x_group, alpha)`` per group.
    """
    n = len(feats)
    if groups is None:
        groups = torch.zeros(n, dtype=torch.int64, device=feats.u.device)
    if n_groups is None:
        n_groups = int(groups.max()) + 1 if n else 1
    if n and (int(groups.min()) < 0 or int(groups.max()) >= n_groups):
        raise bad_param("groups", f"ids in [0, {n_groups})", f"[{int(groups.min())}, {int(groups.max())}]",
                        owner="chg_values_streaming")
    sums = CHGSums.compute(feats, groups, n_groups)
    if reduce is not None:
        sums.reduce(reduce)
    out = torch.zeros(n, dtype=torch.float64, device=feats.u.device)
    sq = feats.sq_norms()
    present = torch.unique(groups).tolist()
    for k in present:
        m = groups == k
        sub = feats if len(present) == 1 else feats.subset(m)
        s = sums.vector(k)
        nk = int(round(float(sums.counts[k])))
        xa = None if alpha is None else sub.dot(alpha)
        sa = None if alpha is None else s.dot(alpha)
        out[m] = chg_shapley_from_terms(nk, sq[m], sub.dot(s), s.dot(s), float(sums.q[k]), xa=xa, sa=sa)
    return out

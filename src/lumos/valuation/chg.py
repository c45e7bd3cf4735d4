"""Closed-form Shapley values of the CHG utility (arXiv 2406.11730, Eq. 4), and the α = mean fast path.

The CHG utility of a subset S of points with vectors x_i (x_i = ℓ_i·∇_last ℓ_i) and target direction α is

    U(S) = ‖α‖² − ‖x̄_S − α‖² = 2⟨x̄_S, α⟩ − ‖x̄_S‖²,   x̄_S = mean_{i∈S} x_i,   U(∅) = 0.

Its Shapley value has the closed form (Eq. 4), with H1 = Σ_{k≤n} 1/k, H2 = Σ_{k≤n} 1/k², s = Σ_j x_j,
Q = Σ_j ‖x_j‖², B = 2H1 − 2H2 − 1 + 1/n:

    φ_i = c1‖x_i‖² + c2⟨x_i, s⟩ + c3‖s‖² + c4·Q + c5⟨x_i, α⟩ + c6⟨s, α⟩        (n ≥ 3)

(coefficients in :func:`chg_coefficients`). For n ≤ 2 the coefficients divide by zero and the value is
computed by definition. When α = x̄ (the mean, the default everywhere in the paper's code) the terms
collapse to ``φ_i = const_n − κ_n‖x_i − x̄‖²`` with κ_n = −c1 and const_n fixed by efficiency (Σφ = U(N) =
‖x̄‖²): the fast path. Everything is computed in float64.

The formula only needs the scalars ‖x_i‖², ⟨x_i, s⟩, ⟨x_i, α⟩ and the sums ‖s‖², Q, ⟨s, α⟩, so
:func:`chg_shapley_from_terms` serves both the explicit path (:func:`chg_shapley`) and the streaming one
(:mod:`lumos.valuation.features`), which never builds the x_i.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch

from lumos.core.errors import bad_param

__all__ = [
    "chg_shapley",
    "chg_shapley_naive",
    "chg_utility",
    "chg_coefficients",
    "chg_kappa",
    "chg_shapley_from_terms",
]

_OWNER = "chg_shapley"


def _harmonics(n: int) -> tuple[float, float]:
    k = np.arange(1, n + 1, dtype=np.float64)
    return math.fsum(1.0 / k), math.fsum(1.0 / (k * k))


def chg_coefficients(n: int) -> tuple[float, float, float, float, float, float]:
    """The six Eq. 4 coefficients (c1, ..., c6) for n ≥ 3 players, in float64."""
    if n < 3:
        raise bad_param("n", "an integer >= 3 (n <= 2 is computed by definition)", n, owner="chg_coefficients")
    h1, h2 = _harmonics(n)
    b = 2 * h1 - 2 * h2 - 1 + 1 / n
    n1, n2 = n * (n - 1), n * (n - 1) * (n - 2)
    c1 = -h2 / n + (2 * h1 - 3 * h2 + 1 / n) / n1 + 2 * b / n2
    c2 = -2 * (h1 - h2 - 1 / n + 1 / n**2) / ((n - 1) * (n - 2))
    c3 = b / n2
    c4 = (h2 - 1 / n) / n1 - b / n2
    c5 = 2 * (h1 - 1 / n) / (n - 1)
    c6 = -2 * (h1 - 1) / n1
    return c1, c2, c3, c4, c5, c6


def chg_kappa(n: int) -> float:
    """κ_n = −c1 > 0: with α = x̄, φ_i = const_n − κ_n‖x_i − x̄‖² (n·κ_n → π²/6)."""
    return -chg_coefficients(n)[0]


def chg_shapley_from_terms(
    n: int,
    sq: torch.Tensor,
    xs: torch.Tensor,
    ss: float,
    q: float,
    xa: torch.Tensor | None = None,
    sa: float | None = None,
) -> torch.Tensor:
    """Eq. 4 (or the n ≤ 2 definition) from inner products; α = mean when ``xa`` is None.

    Args:
        n: number of players (≥ 1).
        sq: (m,) ‖x_i‖² of the players to score (m ≤ n: under DDP each rank scores its own).
        xs: (m,) ⟨x_i, s⟩ with s = Σ_j x_j over all n players.
        ss: ‖s‖².  q: Σ_j ‖x_j‖².
        xa: (m,) ⟨x_i, α⟩, or None for α = s/n.  sa: ⟨s, α⟩ (required with ``xa``).
    Returns:
        (m,) float64 Shapley values.
    """
    if xa is None:  # α = x̄ = s/n
        if n >= 3:
            dist = (sq - 2.0 * xs / n + ss / n**2).clamp_min(0.0)  # ‖x_i − x̄‖²
            total_dist = q - ss / n  # Σ_j ‖x_j − x̄‖²
            kappa = chg_kappa(n)
            return (ss / n**2 + kappa * total_dist) / n - kappa * dist
        xa, sa = xs / n, ss / n
    if sa is None:
        raise bad_param("sa", "<s, alpha> (a float) whenever xa is given", None, owner="chg_shapley_from_terms")
    if n >= 3:
        c1, c2, c3, c4, c5, c6 = chg_coefficients(n)
        return c1 * sq + c2 * xs + c3 * ss + c4 * q + c5 * xa + c6 * sa
    if n == 1:
        return 2.0 * xa - sq  # φ = U({1})
    # n == 2: φ_1 = ½[U({1}) − U({2}) + U({1,2})], with x_2 = s − x_1
    u_self = 2.0 * xa - sq
    u_other = 2.0 * (sa - xa) - (q - sq)
    u_both = sa - ss / 4.0
    return 0.5 * (u_self - u_other + u_both)


def _as_matrix(x: Any, name: str, owner: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise bad_param(name, "a (N, P) float tensor or array", type(x).__name__, owner=owner, type_error=True)
    if not x.is_floating_point():
        raise bad_param(name, "a floating-point tensor (float64 preferred)", str(x.dtype), owner=owner, type_error=True)
    if x.dim() != 2:
        raise bad_param(name, "a 2-D (N, P) matrix", f"shape {tuple(x.shape)}", owner=owner)
    if x.shape[0] == 0:
        raise bad_param(name, "non-empty (N >= 1 rows)", f"shape {tuple(x.shape)}", owner=owner, fix="Pass at least one point.")
    x = x.detach().to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise bad_param(name, "finite (no NaN or inf)", f"{int((~torch.isfinite(x)).sum())} non-finite entries",
                        owner=owner, fix="Check the features (a diverged model gives NaN losses).")
    return x


def _as_alpha(alpha: Any, p: int, device: torch.device, owner: str) -> torch.Tensor:
    a = torch.as_tensor(alpha.detach() if isinstance(alpha, torch.Tensor) else alpha)
    if a.dim() != 1 or a.shape[0] != p or not a.is_floating_point():
        raise bad_param("alpha", f"a float vector of shape ({p},) or None", f"{a.dtype} of shape {tuple(a.shape)}", owner=owner)
    a = a.to(device=device, dtype=torch.float64)
    if not bool(torch.isfinite(a).all()):
        raise bad_param("alpha", "finite", "non-finite entries", owner=owner)
    return a


def chg_shapley(x: torch.Tensor | np.ndarray, alpha: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """Exact Shapley values of the CHG utility U(S) = 2⟨x̄_S, α⟩ − ‖x̄_S‖².

    Args:
        x: (N, P) CHG vectors x_i = ℓ_i·∇_last ℓ_i (float64; other float dtypes are upcast).
        alpha: (P,) target direction, or None for the mean x̄ (fast path ``const_n − κ_n‖x_i − x̄‖²``).
    Returns:
        (N,) float64 values with Σφ = U(N). N ≤ 2 is computed by definition.

    Example::

        >>> x = torch.randn(100, 10, dtype=torch.float64)
        >>> phi = chg_shapley(x)                       # α = mean
        >>> torch.allclose(phi.sum(), x.mean(0).square().sum())
        True
    """
    x = _as_matrix(x, "x", _OWNER)
    n = x.shape[0]
    if alpha is None and n >= 3:
        mean = x.mean(0)
        dist = (x - mean).square().sum(1)  # ‖x_i − x̄‖², computed directly (no cancellation)
        kappa = chg_kappa(n)
        return (mean.square().sum() + kappa * dist.sum()) / n - kappa * dist
    s = x.sum(0)
    sq = x.square().sum(1)
    xs = x @ s
    ss, q = float(s @ s), float(sq.sum())
    if alpha is None:
        return chg_shapley_from_terms(n, sq, xs, ss, q)
    a = _as_alpha(alpha, x.shape[1], x.device, _OWNER)
    return chg_shapley_from_terms(n, sq, xs, ss, q, xa=x @ a, sa=float(s @ a))


def chg_utility(x: torch.Tensor, subset: list[int] | tuple[int, ...], alpha: torch.Tensor) -> float:
    """U(S) = 2⟨x̄_S, α⟩ − ‖x̄_S‖² for the rows ``subset`` of ``x`` (U(∅) = 0)."""
    if len(subset) == 0:
        return 0.0
    m = x[list(subset)].mean(0)
    return float(2.0 * (m @ alpha) - m @ m)


def chg_shapley_naive(x: torch.Tensor | np.ndarray, alpha: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """Oracle twin of :func:`chg_shapley`: Shapley values by enumerating all 2^N subsets (N ≤ 16).

    φ_i = Σ_{S ⊆ N∖{i}} |S|!(N−|S|−1)!/N! · (U(S ∪ {i}) − U(S)), with α = mean of all rows when None.
    """
    x = _as_matrix(x, "x", "chg_shapley_naive")
    n = x.shape[0]
    if n > 16:
        raise bad_param("x", "at most 16 rows (the oracle enumerates 2^N subsets)", f"{n} rows", owner="chg_shapley_naive")
    a = x.mean(0) if alpha is None else _as_alpha(alpha, x.shape[1], x.device, "chg_shapley_naive")
    util = {}
    for r in range(n + 1):
        for sub in itertools.combinations(range(n), r):
            util[sub] = chg_utility(x, sub, a)
    weights = [math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)]
    phi = torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        total = 0.0
        for r in range(n):
            for sub in itertools.combinations(others, r):
                with_i = tuple(sorted(sub + (i,)))
                total += weights[r] * (util[with_i] - util[sub])
        phi[i] = total
    return phi

"""Closed form (Eq. 4) and the α = mean fast path against brute-force Shapley enumeration."""

import math

import numpy as np
import pytest
import torch

from lumos.core.errors import LumosError
from lumos.testing import assert_close
from lumos.valuation import chg_shapley
from lumos.valuation.chg import (
    chg_coefficients,
    chg_kappa,
    chg_shapley_naive,
    chg_utility,
)


def _x(n, p, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, p, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("p", [1, 5])
def test_closed_form_equals_brute_force_general_alpha(n, p):
    x = _x(n, p, seed=10 * n + p)
    alpha = _x(1, p, seed=99 + n)[0]
    assert_close(f"phi n={n}", chg_shapley(x, alpha), chg_shapley_naive(x, alpha), atol=1e-10, rtol=0)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_fast_path_equals_brute_force_and_eq4(n):
    x = 3.0 * _x(n, 4, seed=n)
    fast = chg_shapley(x)
    assert_close("fast vs brute force", fast, chg_shapley_naive(x), atol=1e-10, rtol=0)
    assert_close("fast vs Eq.4 with alpha=mean", fast, chg_shapley(x, x.mean(0)), atol=1e-10, rtol=1e-12)


@pytest.mark.parametrize("n", [3, 17, 200])
def test_efficiency_axiom(n):
    x = _x(n, 6, seed=n)
    alpha = _x(1, 6, seed=1000 + n)[0]
    phi = chg_shapley(x, alpha)
    u_all = chg_utility(x, tuple(range(n)), alpha)
    assert abs(float(phi.sum()) - u_all) < 1e-10 * max(1.0, abs(u_all))
    phi0 = chg_shapley(x)
    assert abs(float(phi0.sum()) - float(x.mean(0).square().sum())) < 1e-10


@pytest.mark.parametrize("n", [3, 4, 10, 101])
def test_distance_identity(n):
    """With α = x̄: φ_i + κ_n‖x_i − x̄‖² is the same for every i (Eq. 4 evaluated in full)."""
    x = _x(n, 7, seed=n)
    phi = chg_shapley(x, x.mean(0))
    resid = phi + chg_kappa(n) * (x - x.mean(0)).square().sum(1)
    assert float(resid.max() - resid.min()) < 1e-10
    c1, c2, c3, c4, c5, c6 = chg_coefficients(n)
    assert abs(c2 + c5 / n + 2 * c1 / n) < 1e-14  # the coefficient identity behind the fast path


def test_n_kappa_table():
    """n·κ_n from the reference table (§3), and the π²/6 limit."""
    table = {10: 1.353, 37: 1.512, 100: 1.578, 1000: 1.634, 100_000: 1.6447}
    for n, want in table.items():
        assert abs(n * chg_kappa(n) - want) < 5e-4 * (10 if n < 100_000 else 1), n
    assert n * chg_kappa(100_000) < math.pi**2 / 6


def test_set_mean_game_formula():
    """Shapley of g(S) = mean_{i∈S} v_i: (H_n − 1/n)/(n−1)·v_i − (H_n − 1)/(n(n−1))·Σv (reference §2)."""
    n = 6
    v = _x(n, 1, seed=3)[:, 0]
    # the c5/c6 part of U is the game 2⟨x̄_S, α⟩ = 2·mean(v) with v_i = ⟨x_i, α⟩; take α = e_1, x = v
    x = torch.stack([v, torch.zeros(n, dtype=torch.float64)], 1)
    alpha = torch.tensor([0.5, 0.0], dtype=torch.float64)  # 2⟨x̄_S, α⟩ = mean(v_S)
    brute_u = chg_shapley_naive(x, alpha)
    brute_quad = chg_shapley_naive(x, torch.zeros(2, dtype=torch.float64))  # −‖x̄_S‖² part only
    h = sum(1.0 / k for k in range(1, n + 1))
    formula = (h - 1 / n) / (n - 1) * v - (h - 1) / (n * (n - 1)) * v.sum()
    assert_close("set-mean game", brute_u - brute_quad, formula, atol=1e-12, rtol=0)


def test_ranking_is_distance_to_mean():
    x = _x(300, 9, seed=1)
    phi = chg_shapley(x).numpy()
    dist = (x - x.mean(0)).square().sum(1).numpy()
    assert (np.argsort(-phi, kind="stable") == np.argsort(dist, kind="stable")).all()


def test_numpy_and_float32_inputs_upcast_and_not_mutated():
    x = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    before = x.copy()
    phi = chg_shapley(x)
    assert phi.dtype == torch.float64 and phi.shape == (12,)
    assert (x == before).all()
    assert_close("float32 upcast", phi, chg_shapley(torch.from_numpy(before).double()), atol=1e-12, rtol=0)


def test_deterministic():
    x = _x(50, 4, seed=2)
    assert torch.equal(chg_shapley(x), chg_shapley(x.clone()))


def test_clear_errors():
    with pytest.raises(LumosError, match="non-empty"):
        chg_shapley(torch.zeros(0, 3, dtype=torch.float64))
    with pytest.raises(LumosError, match="2-D"):
        chg_shapley(torch.zeros(3, dtype=torch.float64))
    with pytest.raises(LumosError, match="finite"):
        chg_shapley(torch.tensor([[1.0, float("nan")], [0.0, 1.0]], dtype=torch.float64))
    with pytest.raises(LumosError, match="floating-point"):
        chg_shapley(torch.ones(3, 2, dtype=torch.int64))
    with pytest.raises(LumosError, match=r"shape \(2,\)"):
        chg_shapley(torch.ones(3, 2, dtype=torch.float64), alpha=torch.ones(3, dtype=torch.float64))
    with pytest.raises(LumosError, match=">= 3"):
        chg_coefficients(2)
    with pytest.raises(LumosError, match="at most 16"):
        chg_shapley_naive(torch.zeros(17, 1, dtype=torch.float64))

"""Per-batch last-layer gradients, non-negative ridge OMP and GLISTER's greedy: fast paths vs their twins."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lumos.core.errors import LumosError
from lumos.valuation.selection_solvers import (
    batch_last_layer_grads,
    batch_last_layer_grads_naive,
    fixed_batches,
    glister_greedy,
    glister_greedy_naive,
    last_layer_stats,
    omp_nonneg,
    omp_nonneg_naive,
)


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3))


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 4))


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("batch_size", [8, 37, 50])
def test_batch_grads_match_autograd(kind, batch_size):
    g = torch.Generator().manual_seed(1)
    n = 37  # awkward: the last batch is short
    if kind == "mlp":
        model, x, c = _mlp(), torch.randn(n, 5, generator=g), 4
    else:
        model, x, c = _cnn(), torch.randn(n, 3, 6, 6, generator=g), 3
    ds = TensorDataset(x, torch.randint(0, c, (n,), generator=g))
    model.train()  # the pass must switch to eval (BatchNorm) and back
    fast = batch_last_layer_grads(model, ds, batch_size)
    slow = batch_last_layer_grads_naive(model, ds, batch_size)
    assert model.training
    assert fast.shape == (len(fixed_batches(n, batch_size)), slow.shape[1])
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=1e-5)


def test_fixed_batches_cover_in_order():
    blocks = fixed_batches(10, 4)
    assert [b.tolist() for b in blocks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def _omp_problem(seed, d=30, n=12):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, n, generator=g, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64) + A[:, :3].sum(1)
    return A, b


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 4, 12])
@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_omp_gram_form_matches_residual_loop(seed, k, lam):
    A, b = _omp_problem(seed)
    fast = omp_nonneg(A.T @ A, A.T @ b, float(b @ b), k, lam)
    slow = omp_nonneg_naive(A, b, k, lam)
    torch.testing.assert_close(fast, slow, atol=1e-9, rtol=1e-9)
    assert bool((fast >= 0).all()) and int((fast > 0).sum()) <= k


def test_omp_recovers_a_nonnegative_sparse_code_of_orthonormal_atoms():
    # Orthonormal atoms: ⟨a_j, r⟩ = x_j on the remaining support, so OMP picks the largest weights first and,
    # with λ = 0, solves them exactly: the residual is 0 after 3 atoms and the loop stops (tol).
    q, _ = torch.linalg.qr(torch.randn(20, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    x_true = torch.zeros(8, dtype=torch.float64)
    x_true[[1, 4, 6]] = torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64)
    b = q @ x_true
    x = omp_nonneg(q.T @ q, q.T @ b, float(b @ b), 5, lam=0.0, tol=1e-10)
    torch.testing.assert_close(x, x_true, atol=1e-12, rtol=0)
    # λ = 1 halves the weights (A_SᵀA_S = I); the residual then correlates most with atom 1 (3 − 1.5 > 1)
    # after atoms 1 and 6 are in, a repeat pick, which ends the loop with atom 4 left out
    x_ridge = omp_nonneg(q.T @ q, q.T @ b, float(b @ b), 3, lam=1.0)
    want = torch.zeros(8, dtype=torch.float64)
    want[[1, 6]] = torch.tensor([1.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(x_ridge, want, atol=1e-12, rtol=0)
    torch.testing.assert_close(omp_nonneg_naive(q, b, 3, lam=1.0), want, atol=1e-12, rtol=0)


def test_omp_drops_negative_weights():
    # b = a0 − a1 with a0 ⟂ a1 after a shift: a0 is picked first; adding a1 would need a negative weight,
    # so a1 is dropped and the solution keeps a0 only.
    A = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([2.0, -1.0, 0.0], dtype=torch.float64)
    for x in (omp_nonneg(A.T @ A, A.T @ b, float(b @ b), 2, lam=0.0), omp_nonneg_naive(A, b, 2, lam=0.0)):
        torch.testing.assert_close(x, torch.tensor([2.0, 0.0], dtype=torch.float64))


def test_omp_budget_is_checked():
    A, b = _omp_problem(0)
    with pytest.raises(LumosError, match="'k'"):
        omp_nonneg(A.T @ A, A.T @ b, float(b @ b), 0)
    with pytest.raises(LumosError, match="'k'"):
        omp_nonneg_naive(A, b, 13)


def _glister_problem(seed, n, c, d, m):
    """n per-sample last-layer gradients (bias + weight of a c-class, d-feature layer) and m validation
    logits z, features h, labels y."""
    g = torch.Generator().manual_seed(seed)
    grads = torch.randn(n, c + c * d, generator=g, dtype=torch.float64)
    z = torch.randn(m, c, generator=g, dtype=torch.float64)
    h = torch.randn(m, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (m,), generator=g)
    return grads, z, h, y


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("eta", [0.1, 2.0])
def test_glister_closed_form_matches_autograd(seed, eta):
    grads, z, h, y = _glister_problem(seed, n=15, c=4, d=6, m=20)
    fast = glister_greedy(grads, z, h, y, 8, eta)
    assert fast == glister_greedy_naive(grads, z, h, y, 8, eta)
    assert len(set(fast)) == 8


def test_glister_first_pick_is_the_steepest_validation_descent():
    # k = 1: the gain is ⟨g_e, ∇L_val(θ)⟩, so the candidate equal to the validation gradient itself beats
    # a smaller multiple of it and an orthogonal direction.
    model = _mlp()
    g = torch.Generator().manual_seed(3)
    val = TensorDataset(torch.randn(12, 5, generator=g), torch.randint(0, 4, (12,), generator=g))
    z, h, y = last_layer_stats(model, val)
    v = batch_last_layer_grads(model, val, 12)[0]
    ortho = torch.randn_like(v)
    ortho -= (ortho @ v) / (v @ v) * v
    grads = torch.stack([0.5 * v, ortho, v, -v])
    assert glister_greedy(grads, z, h, y, 1, 0.1) == [2]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [1, 5, 15])
def test_glister_stochastic_closed_form_matches_autograd(seed, k):
    import numpy as np

    from lumos.valuation.selection_solvers import glister_stochastic_greedy, glister_stochastic_greedy_naive

    grads, z, h, y = _glister_problem(seed, n=40, c=3, d=5, m=17)
    fast = glister_stochastic_greedy(grads, z, h, y, k, 0.3, np.random.default_rng(seed))
    assert fast == glister_stochastic_greedy_naive(grads, z, h, y, k, 0.3, np.random.default_rng(seed))
    assert len(set(fast)) == k


def test_stochastic_greedy_sample_size_and_full_scan_equals_naive_greedy():
    import numpy as np

    from lumos.valuation.selection_solvers import glister_stochastic_greedy, stochastic_sample_size

    # ⌈(n/k)·ln(1/ε)⌉: n = 100, k = 10, ε = 0.01 → ⌈10 · 4.6052⌉ = 47; capped at n; at least 1
    assert stochastic_sample_size(100, 10) == 47
    assert stochastic_sample_size(100, 1) == 100 and stochastic_sample_size(5, 5, epsilon=0.99) == 1
    # when every round scans all remaining candidates (ε tiny) stochastic greedy is the naive greedy
    grads, z, h, y = _glister_problem(7, n=12, c=4, d=3, m=9)
    full = glister_stochastic_greedy(grads, z, h, y, 6, 0.5, np.random.default_rng(0), epsilon=1e-12)
    assert full == glister_greedy(grads, z, h, y, 6, 0.5)

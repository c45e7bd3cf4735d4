"""The numerical cores of the CORDS per-batch selection baselines, each with its slow twin.

- :func:`batch_last_layer_grads` — the mean last-layer gradient [∇_b, vec ∇_W] of each fixed mini-batch of
  the training set (CORDS ``compute_gradients(perBatch=True)`` with ``linear_layer=True``), from one no-grad
  pass and the closed form g = softmax − onehot, ∇_W = g hᵀ. Twin: autograd on the model, batch by batch.
- :func:`omp_nonneg` — GradMatch's orthogonal matching pursuit with a ridge term and non-negative weights,
  run on the Gram matrix AᵀA only. Twin: :func:`omp_nonneg_naive`, the textbook loop on A and the residual.
- :func:`glister_greedy` — GLISTER's greedy selection by the one-step Taylor gain on the validation loss,
  updating the validation logits in closed form. Twin: :func:`glister_greedy_naive`, autograd on the head.
- :func:`glister_stochastic_greedy` — the same gain with stochastic greedy (each round scans a random sample of
  the remaining candidates, CORDS ``greedy='Stochastic'``), used per sample by the paper's GLISTER. Twin:
  :func:`glister_stochastic_greedy_naive`.

Everything is float64. Layout of a gradient vector: ``[∇_b (C), ∇_W (C·D, row-major C × D)]``, CORDS's
order (bias block, then the weight block with the feature index fastest).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from lumos.core.validation import check_int
from lumos.valuation.per_sample import capture_last_layer, ce_logit_grad, find_last_linear

__all__ = [
    "fixed_batches",
    "batch_last_layer_grads",
    "batch_last_layer_grads_naive",
    "last_layer_stats",
    "omp_nonneg",
    "omp_nonneg_naive",
    "glister_greedy",
    "glister_greedy_naive",
    "stochastic_sample_size",
    "glister_stochastic_greedy",
    "glister_stochastic_greedy_naive",
]


def fixed_batches(n: int, batch_size: int) -> list[torch.Tensor]:
    """Consecutive index blocks ``[0, B), [B, 2B), …`` of ``range(n)`` (CORDS's unshuffled selection loader)."""
    return [torch.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


def _xy(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return batch[0], torch.as_tensor(batch[1])


def last_layer_stats(model: nn.Module, dataset: Any, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits z (N, C), penultimate features h (N, D) and labels y (N,) of ``dataset`` in its order (eval mode,
    no grad; float64)."""
    was_training = model.training
    model.eval()
    zs, hs, ys = [], [], []
    try:
        with capture_last_layer(model) as cap, torch.no_grad():
            for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
                x, y = _xy(batch)
                model(x)
                zs.append(cap["z"].double().cpu())
                hs.append(cap["h"].double().reshape(len(y), -1).cpu())
                ys.append(y.long().cpu())
    finally:
        model.train(was_training)
    return torch.cat(zs), torch.cat(hs), torch.cat(ys)


def batch_last_layer_grads(model: nn.Module, dataset: Any, batch_size: int) -> torch.Tensor:
    """Mean last-layer gradient of each fixed batch (:func:`fixed_batches`): (n_batches, C + C·D) float64.

    Row k is ∇ of (1/|B_k|) Σ_{i∈B_k} CE(z_i, y_i) w.r.t. (b, W) of the last ``nn.Linear``, i.e.
    [mean_i g_i, vec(mean_i g_i h_iᵀ)] with g = softmax(z) − onehot(y). Eval mode, one no-grad pass.
    """
    z, h, y = last_layer_stats(model, dataset)
    _, g = ce_logit_grad(z, y)  # (N, C)
    rows = []
    for idx in fixed_batches(len(y), batch_size):
        gb, hb = g[idx], h[idx]
        rows.append(torch.cat([gb.mean(0), (gb.T @ hb / len(idx)).reshape(-1)]))
    return torch.stack(rows)


def batch_last_layer_grads_naive(model: nn.Module, dataset: Any, batch_size: int) -> torch.Tensor:
    """Twin of :func:`batch_last_layer_grads`: ``torch.autograd.grad`` of each batch's mean cross-entropy
    w.r.t. the last layer's bias and weight, running the whole model per batch (eval mode)."""
    head = find_last_linear(model)
    was_training = model.training
    model.eval()
    rows = []
    try:
        for idx in fixed_batches(len(dataset), batch_size):
            items = [dataset[int(i)] for i in idx]
            x = torch.stack([torch.as_tensor(it[0]) for it in items])
            y = torch.tensor([int(it[1]) for it in items])
            loss = F.cross_entropy(model(x), y)
            gb, gw = torch.autograd.grad(loss, [head.bias, head.weight])
            rows.append(torch.cat([gb.double(), gw.double().reshape(-1)]))
    finally:
        model.train(was_training)
    return torch.stack(rows)


def _check_budget(k: int, n: int, owner: str) -> None:
    check_int(k, "k", 1, n, owner=owner, fix="k is the number of atoms to select.")


def omp_nonneg(gram: torch.Tensor, c: torch.Tensor, bb: float, k: int, lam: float = 0.5,
               tol: float = 1e-100) -> torch.Tensor:
    """GradMatch's non-negative ridge OMP on the Gram matrix: weights x (n,) with at most ``k`` non-zeros.

    Approximately solves min_x ‖A x − b‖² + λ‖x‖² with x ≥ 0 and ‖x‖₀ ≤ k for atoms a_j (the columns of A),
    from ``gram`` = AᵀA (n, n), ``c`` = Aᵀb (n,) and ``bb`` = ‖b‖² only (never the d-dimensional vectors).
    Each round: the atom with the largest correlation ⟨a_j, r⟩ = c_j − (G x)_j with the residual r = b − A x
    joins S (a repeat ends the loop); x_S = (G_SS + λI)⁻¹ c_S; while some x_j < 0 the most negative atom
    leaves S and x_S is re-solved. Stops early when ‖r‖/‖b‖ < ``tol``.
    (CORDS ``OrthogonalMP_REG``; it solves the first atom without the ridge term, here every step has it.)
    """
    n = gram.shape[0]
    _check_budget(k, n, "omp_nonneg")
    gram, c = gram.double(), c.double()
    x = torch.zeros(n, dtype=torch.float64)
    support: list[int] = []
    norm_b = max(bb, 0.0) ** 0.5
    for _ in range(k):
        resid_sq = bb - 2 * float(c @ x) + float(x @ gram @ x)
        if norm_b == 0 or max(resid_sq, 0.0) ** 0.5 / norm_b < tol:
            break
        corr = c - gram @ x  # Aᵀr
        j = int(torch.argmax(corr))
        if j in support:
            break
        support.append(j)
        xs = _ridge_nonneg(gram, c, support, lam)
        x.zero_()
        x[support] = xs
    return x


def _ridge_nonneg(gram: torch.Tensor, c: torch.Tensor, support: list[int], lam: float) -> torch.Tensor:
    """Solve (G_SS + λI) x = c_S, dropping the most negative atom from ``support`` (in place) until x ≥ 0."""
    while True:
        s = torch.tensor(support)
        lhs = gram[s][:, s] + lam * torch.eye(len(s), dtype=torch.float64)
        # λ = 0 (the paper's GradMatch configs): G_SS may be singular (collinear atoms); least squares then
        xs = torch.linalg.solve(lhs, c[s]) if lam > 0 else torch.linalg.lstsq(lhs, c[s][:, None]).solution[:, 0]
        if len(support) == 1 or float(xs.min()) >= 0:
            return xs.clamp_min(0.0)
        del support[int(torch.argmin(xs))]


def omp_nonneg_naive(A: torch.Tensor, b: torch.Tensor, k: int, lam: float = 0.5, tol: float = 1e-100) -> torch.Tensor:
    """Twin of :func:`omp_nonneg` on the explicit (d, n) atom matrix ``A`` and target ``b`` (d,).

    Keeps the residual vector r = b − A_S x_S; picks argmax_j ⟨a_j, r⟩ by a Python loop over the atoms;
    solves the ridge system by ``torch.linalg.lstsq`` on A_Sᵀ A_S + λI; drops the most negative weight
    until all are ≥ 0.
    """
    A, b = A.double(), b.double()
    n = A.shape[1]
    _check_budget(k, n, "omp_nonneg_naive")
    support: list[int] = []
    xs = torch.zeros(0, dtype=torch.float64)
    r = b.clone()
    for _ in range(k):
        if float(b.norm()) == 0 or float(r.norm()) / float(b.norm()) < tol:
            break
        best, best_val = -1, -float("inf")
        for j in range(n):
            v = float(A[:, j] @ r)
            if v > best_val:
                best, best_val = j, v
        if best in support:
            break
        support.append(best)
        while True:
            As = A[:, support]
            lhs = As.T @ As + lam * torch.eye(len(support), dtype=torch.float64)
            xs = torch.linalg.lstsq(lhs, (As.T @ b)[:, None]).solution[:, 0]
            if len(support) == 1 or float(xs.min()) >= 0:
                xs = xs.clamp_min(0.0)
                break
            del support[int(torch.argmin(xs))]
        r = b - A[:, support] @ xs
    x = torch.zeros(n, dtype=torch.float64)
    if support:
        x[support] = xs
    return x


def _split(grads: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = grads.shape[0]
    return grads[:, :n_classes], grads[:, n_classes:].reshape(n, n_classes, -1)


def glister_greedy(grads: torch.Tensor, z_val: torch.Tensor, h_val: torch.Tensor, y_val: torch.Tensor, k: int,
                   eta: float) -> list[int]:
    """GLISTER's naive greedy: ``k`` rows of ``grads`` (candidate last-layer gradients, (n, C + C·D)).

    With S the chosen set and θ_S = θ − η Σ_{j∈S} grads_j (last layer only), each round adds
    argmax_e ⟨grads_e, ∇_θ L_val(θ_S)⟩ — the one-step Taylor decrease of the mean validation cross-entropy.
    The validation logits at θ_S are z_val − η(Σ_S b_j + h_val (Σ_S W_j)ᵀ), updated by one rank-C step per
    round, so no model pass is needed (CORDS ``GLISTERStrategy`` with ``greedy='Naive'``).

    Args:
        grads: (n, C + C·D) float64.  z_val: (M, C) validation logits at θ.  h_val: (M, D) their features.
        y_val: (M,) labels.  k: rounds (≤ n).  eta: step size (the learning rate in CORDS).
    Returns:
        the chosen row indices in the order chosen.
    """
    n, c = grads.shape[0], z_val.shape[1]
    _check_budget(k, n, "glister_greedy")
    gb, gw = _split(grads.double(), c)
    z, h = z_val.double().clone(), h_val.double()
    free = torch.ones(n, dtype=torch.bool)
    chosen: list[int] = []
    for _ in range(k):
        val_grad = _val_grad(z, h, y_val)
        gains = (grads.double() @ val_grad).masked_fill(~free, -float("inf"))
        e = int(torch.argmax(gains))
        chosen.append(e)
        free[e] = False
        z -= eta * (gb[e] + h @ gw[e].T)
    return chosen


def glister_greedy_naive(grads: torch.Tensor, z_val: torch.Tensor, h_val: torch.Tensor, y_val: torch.Tensor, k: int,
                         eta: float) -> list[int]:
    """Twin of :func:`glister_greedy`: the validation logits at θ_S are z_val + F.linear(h_val, ΔW, Δb) with
    leaf tensors (Δb, ΔW) = −η Σ_{j∈S} grads_j; ∇_θ L_val(θ_S) = ∂L/∂Δ comes from ``torch.autograd.grad`` and
    the gains from a Python loop over the remaining candidates (first maximum wins, as ``argmax``)."""
    n = grads.shape[0]
    _check_budget(k, n, "glister_greedy_naive")
    grads, h = grads.double(), h_val.double()
    chosen: list[int] = []
    total = torch.zeros(grads.shape[1], dtype=torch.float64)
    for _ in range(k):
        val_grad = _autograd_val_grad(total, eta, z_val, h, y_val)
        best = _first_max_gain(grads, val_grad, (j for j in range(n) if j not in chosen))
        chosen.append(best)
        total = total + grads[best]
    return chosen


def _first_max_gain(grads: torch.Tensor, val_grad: torch.Tensor, candidates: Iterable[int]) -> int:
    """The twins' Python loop: the candidate row j with the largest gain ⟨grads_j, val_grad⟩ (first maximum
    wins, as ``argmax``); -1 when there is no candidate."""
    best, best_val = -1, -float("inf")
    for j in candidates:
        v = float(grads[j] @ val_grad)
        if v > best_val:
            best, best_val = j, v
    return best


def _val_grad(z: torch.Tensor, h: torch.Tensor, y_val: torch.Tensor) -> torch.Tensor:
    """∇_θ of the mean validation cross-entropy at logits ``z`` (M, C) w.r.t. the last layer (bias, weight),
    flattened as the rows of ``grads`` are: the closed form the fast GLISTER solvers use."""
    _, g = ce_logit_grad(z, y_val)  # (M, C)
    return torch.cat([g.mean(0), (g.T @ h / len(g)).reshape(-1)])


def _autograd_val_grad(total: torch.Tensor, eta: float, z_val: torch.Tensor, h: torch.Tensor,
                       y_val: torch.Tensor) -> torch.Tensor:
    """The same gradient by autograd, for the twins: logits z_val + F.linear(h, ΔW, Δb) with leaf tensors
    (Δb, ΔW) = −η·``total`` (the summed rows chosen so far); ∂L/∂Δ = ∂L/∂θ at θ_S."""
    c = z_val.shape[1]
    db = (-eta * total[:c]).requires_grad_(True)
    dw = (-eta * total[c:].reshape(c, -1)).requires_grad_(True)
    loss = F.cross_entropy(z_val.double() + F.linear(h, dw, db), y_val)
    g_b, g_w = torch.autograd.grad(loss, [db, dw])
    return torch.cat([g_b, g_w.reshape(-1)])


def stochastic_sample_size(n: int, k: int, epsilon: float = 0.01) -> int:
    """Candidates scanned per round by stochastic greedy (Mirzasoleiman et al. 2015): ⌈(n / k) · ln(1/ε)⌉,
    at least 1 and at most n (CORDS: ``int(len(gains) / budget * math.log(100))``, ε = 0.01)."""
    return max(1, min(n, math.ceil(n / k * math.log(1.0 / epsilon))))


def glister_stochastic_greedy(grads: torch.Tensor, z_val: torch.Tensor, h_val: torch.Tensor, y_val: torch.Tensor,
                              k: int, eta: float, rng: np.random.Generator, epsilon: float = 0.01) -> list[int]:
    """GLISTER with stochastic greedy: ``k`` rows of ``grads`` (per-sample last-layer gradients for the paper's
    per-sample GLISTER). Each round draws :func:`stochastic_sample_size` candidates uniformly without replacement
    from those not chosen (``rng.choice`` on the sorted remaining indices), takes the one with the largest
    ⟨grads_e, ∇_θ L_val(θ_S)⟩ (first maximum), and moves the validation logits one step as
    :func:`glister_greedy`.
    """
    n, c = grads.shape[0], z_val.shape[1]
    _check_budget(k, n, "glister_stochastic_greedy")
    size = stochastic_sample_size(n, k, epsilon)
    g64 = grads.double()
    gb, gw = _split(g64, c)
    z, h = z_val.double().clone(), h_val.double()
    free = np.ones(n, dtype=bool)
    chosen: list[int] = []
    for _ in range(k):
        remaining = np.flatnonzero(free)
        cand = rng.choice(remaining, size=min(size, len(remaining)), replace=False)
        val_grad = _val_grad(z, h, y_val)
        gains = g64[torch.as_tensor(cand)] @ val_grad
        e = int(cand[int(torch.argmax(gains))])
        chosen.append(e)
        free[e] = False
        z -= eta * (gb[e] + h @ gw[e].T)
    return chosen


def glister_stochastic_greedy_naive(grads: torch.Tensor, z_val: torch.Tensor, h_val: torch.Tensor,
                                    y_val: torch.Tensor, k: int, eta: float, rng: np.random.Generator,
                                    epsilon: float = 0.01) -> list[int]:
    """Twin of :func:`glister_stochastic_greedy`: the same candidate draws, the validation gradient at θ_S by
    ``torch.autograd.grad`` through F.linear of the accumulated step (as :func:`glister_greedy_naive`), gains by a
    Python loop over the candidates (first maximum wins)."""
    n = grads.shape[0]
    _check_budget(k, n, "glister_stochastic_greedy_naive")
    size = stochastic_sample_size(n, k, epsilon)
    grads, h = grads.double(), h_val.double()
    chosen: list[int] = []
    total = torch.zeros(grads.shape[1], dtype=torch.float64)
    for _ in range(k):
        remaining = np.array(sorted(set(range(n)) - set(chosen)), dtype=np.int64)
        cand = rng.choice(remaining, size=min(size, len(remaining)), replace=False)
        val_grad = _autograd_val_grad(total, eta, z_val, h, y_val)
        best = _first_max_gain(grads, val_grad, cand.tolist())
        chosen.append(best)
        total = total + grads[best]
    return chosen

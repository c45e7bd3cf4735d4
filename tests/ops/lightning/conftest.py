"""Fixtures for the lightning-attention tests: input makers (session fixtures ``make_inputs`` and
``run_with_grads``), and NaN-filled fresh allocations (a path that reads
memory it never wrote then fails instead of passing by luck)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _nan_fill_fresh_allocations(monkeypatch):
    orig_new_empty, orig_empty_like = torch.Tensor.new_empty, torch.empty_like

    def poison(t):
        if t.is_floating_point():
            t.fill_(float("nan"))
        return t

    monkeypatch.setattr(torch.Tensor, "new_empty", lambda self, *a, **kw: poison(orig_new_empty(self, *a, **kw)))
    monkeypatch.setattr(torch, "empty_like", lambda *a, **kw: poison(orig_empty_like(*a, **kw)))
    yield


def _make_inputs(B, H, L, Dk, Dv, dtype=torch.float64, state=True, n_states=None, scale=0.5, grad=True):
    """q, k, v, slope, initial_state with slopes spanning slow and fast decay."""
    g = torch.Generator().manual_seed(B * 1000003 + H * 1009 + L * 31 + Dk * 7 + Dv)
    q, k, v = ((torch.randn(B, H, L, d, generator=g) * scale).to(dtype) for d in (Dk, Dk, Dv))
    slope = torch.linspace(0.01, 1.5, H, dtype=torch.float64) if H > 1 else torch.tensor([0.3], dtype=torch.float64)
    s0 = torch.randn(n_states or B, H, Dk, Dv, generator=g).to(torch.float64 if dtype == torch.float64 else torch.float32)
    tensors = [q, k, v] + ([s0] if state else [])
    if grad:
        for t in tensors:
            t.requires_grad_(True)
    return q, k, v, slope.to(torch.float64 if dtype == torch.float64 else torch.float32), (s0 if state else None)


def _run_with_grads(fn, q, k, v, slope, s0, cu_seqlens=None, seed=0, **kw):
    """Output, final state and the gradients of q, k, v, s0 under random output and final-state cotangents."""
    o, final = fn(q, k, v, slope, s0, True, cu_seqlens, **kw)
    g = torch.Generator().manual_seed(seed)
    do = torch.randn(o.shape, generator=g).to(o.dtype)
    dfin = torch.randn(final.shape, generator=g).to(final.dtype)
    inputs = [t for t in (q, k, v, s0) if t is not None]
    grads = torch.autograd.grad((o * do).sum() + (final * dfin).sum(), inputs)
    return [o, final, *grads]


@pytest.fixture(scope="session")
def make_inputs():
    return _make_inputs


@pytest.fixture(scope="session")
def run_with_grads():
    return _run_with_grads

"""Test helpers shared by the suite (and usable by downstream tests).

:func:`assert_close` is the one numeric comparison: it names the tensor and reports the max absolute error
and the relative RMS error, and never softens a failure into a warning.
"""

from __future__ import annotations

import torch

from lumos.core.numerics import rel_rms

__all__ = ["assert_close", "rel_rms"]


def assert_close(name: str, actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-5,
                 rms_tol: float | None = None) -> None:
    """Fail with the tensor's name, max abs error and relative RMS when ``actual`` != ``expected``.

    Elementwise: |a − e| ≤ atol + rtol·|e|. With ``rms_tol`` the relative RMS error must also be ≤ rms_tol.
    """
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}")
    a = actual.detach().double().cpu()
    e = expected.detach().double().cpu()
    if not torch.isfinite(a).all() and torch.isfinite(e).all():
        raise AssertionError(f"{name}: {int((~torch.isfinite(a)).sum())} non-finite values")
    err = (a - e).abs()
    max_abs = float(err.max()) if err.numel() else 0.0
    rms = rel_rms(a, e) if err.numel() else 0.0
    bad = err > atol + rtol * e.abs()
    if bool(bad.any()) or (rms_tol is not None and rms > rms_tol):
        raise AssertionError(
            f"{name}: max abs err {max_abs:.3e}, rel RMS {rms:.3e}, {int(bad.sum())}/{err.numel()} elements "
            f"outside atol={atol:g} rtol={rtol:g}" + (f" (rms_tol={rms_tol:g})" if rms_tol is not None else "")
        )

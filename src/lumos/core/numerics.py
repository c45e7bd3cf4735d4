"""Numeric comparisons shared by library reports (demos, benchmarks) and the test helpers of :mod:`lumos.testing`."""

from __future__ import annotations

import torch

__all__ = ["rel_rms"]


def rel_rms(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """‖actual − expected‖₂ / max(‖expected‖₂, tiny), computed in float64."""
    a = actual.detach().double().cpu()
    e = expected.detach().double().cpu()
    return float((a - e).norm() / e.norm().clamp_min(1e-300))

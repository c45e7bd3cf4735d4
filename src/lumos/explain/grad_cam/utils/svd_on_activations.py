"""grad-cam's ``get_2d_projection`` (eigen smoothing) on :func:`lumos.explain.combine.principal_projection`."""

from __future__ import annotations

import numpy as np
import torch

from lumos.explain.combine import principal_projection

__all__ = ["get_2d_projection"]


def get_2d_projection(activation_batch: np.ndarray) -> np.ndarray:
    """(B, K, h, w) numpy → (B, h, w) float32: each sample projected on its first principal component."""
    return principal_projection(torch.as_tensor(np.asarray(activation_batch))).float().numpy()

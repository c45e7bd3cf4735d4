"""The one place where CAM weights meet activations: channel/element weighting, the spatial mean, eigen smoothing.

Every CAM method reduces to ``cam = reduce_k(weighted_k)`` with ``weighted = combine(weights, activations, kind)``:

==================  ======================  ==========================================  ===========================
kind                weights                 weighted activations (B, K, *spatial)       methods
==================  ======================  ==========================================  ===========================
``"channel"``       (B, K)                  w_k · A_k                                   GradCAM, GradCAM++, XGradCAM,
                                                                                        ScoreCAM, ShapleyCAM
``"element"``       (B, K, *spatial)        w ⊙ A                                       HiResCAM, LayerCAM (w = ReLU(g)),
                                                                                        ShapleyCAM-H
``"element_relu"``  (B, K, *spatial)        ReLU(w ⊙ A)                                 GradCAM-E, ShapleyCAM-E
==================  ======================  ==========================================  ===========================

and ``reduce_k`` is the channel sum, or with ``eigen_smooth`` the projection on the first principal component
(grad-cam's ``get_2d_projection``). ``*spatial`` is (h, w) for 2-D maps or (d, h, w) for 3-D volumes: every
reduction here works over "all axes after the channel axis", so it is written once for both.
"""

from __future__ import annotations

import numpy as np
import torch

from lumos.core.errors import bad_param

__all__ = ["KINDS", "spatial_mean", "spatial_sum", "combine", "principal_projection"]

KINDS = ("channel", "element", "element_relu")


def _spatial_dims(t: torch.Tensor) -> tuple[int, ...]:
    if t.dim() < 3:
        raise bad_param("activations", "a (B, K, h, w) or (B, K, d, h, w) tensor", f"shape {tuple(t.shape)}")
    return tuple(range(2, t.dim()))


def spatial_mean(t: torch.Tensor) -> torch.Tensor:
    """(B, K, *spatial) → (B, K): the mean over every spatial axis (2-D maps or 3-D volumes)."""
    return t.mean(dim=_spatial_dims(t))


def spatial_sum(t: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """(B, K, *spatial) → (B, K) (or (B, K, 1, ..., 1) with ``keepdim``): the sum over every spatial axis."""
    return t.sum(dim=_spatial_dims(t), keepdim=keepdim)


def principal_projection(t: torch.Tensor) -> torch.Tensor:
    """Eigen smoothing: (B, K, *spatial) → (B, *spatial), each sample's positions projected on the first
    principal component of its K channels (grad-cam's ``get_2d_projection``, NaNs set to 0 first).

    Per sample, X = the (positions × K) matrix centred over positions, X = U S Vᵀ, projection = X · V[:, 0].
    A principal component's sign is arbitrary; the SVD runs through numpy's LAPACK in the input's precision
    (float32, or float64 for float64 input), which gives the sign grad-cam gets (torch's SVD, and numpy's in
    another precision, flip it for some inputs, and the maps then differ after the ReLU).
    Returns the input's dtype and device.
    """
    _spatial_dims(t)
    work = torch.float64 if t.dtype == torch.float64 else torch.float32
    arr = torch.nan_to_num(t.detach(), nan=0.0).to(work).cpu().numpy()
    out = np.empty((arr.shape[0], *arr.shape[2:]), dtype=arr.dtype)
    for b, a in enumerate(arr):
        x = a.reshape(a.shape[0], -1).T  # (positions, K)
        x = x - x.mean(axis=0)
        vt = np.linalg.svd(x, full_matrices=False)[2]
        out[b] = (x @ vt[0]).reshape(a.shape[1:])
    return torch.from_numpy(out).to(dtype=t.dtype, device=t.device)


def combine(weights: torch.Tensor, activations: torch.Tensor, kind: str, *, eigen_smooth: bool = False
            ) -> torch.Tensor:
    """Raw CAM (B, *spatial) from ``weights`` and ``activations`` (B, K, *spatial); see the module table.

    Args:
        weights: (B, K) for ``kind="channel"``, else the activations' shape.
        activations: (B, K, h, w) or (B, K, d, h, w).
        kind: ``"channel"``, ``"element"`` or ``"element_relu"``.
        eigen_smooth: reduce the weighted activations by their first principal component instead of the sum.
    """
    if kind not in KINDS:
        raise bad_param("kind", "one of " + ", ".join(KINDS), kind, owner="combine")
    spatial = activations.dim() - 2
    want = activations.shape[:2] if kind == "channel" else activations.shape
    if weights.shape != want:
        raise bad_param("weights", f"shape {tuple(want)} for kind '{kind}'", f"shape {tuple(weights.shape)}",
                        owner="combine")
    if kind == "channel":
        if not eigen_smooth:  # Σ_k w_k A_k without materialising w ⊙ A
            return torch.einsum("bk,bk...->b...", weights, activations)
        weighted = weights.reshape(*weights.shape, *([1] * spatial)) * activations
    else:
        weighted = weights * activations
        if kind == "element_relu":
            weighted = torch.relu(weighted)
    return principal_projection(weighted) if eigen_smooth else weighted.sum(dim=1)

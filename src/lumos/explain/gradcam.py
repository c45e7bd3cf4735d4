"""Gradient CAMs: GradCAM, HiResCAM, GradCAM-E, GradCAM++, XGradCAM, LayerCAM (grad-cam 1.5.7 formulas).

Each is a few lines over :class:`~lumos.explain.base.BaseCAM`: it returns its weights and names how they meet
the activations (``combine_kind``, see :mod:`lumos.explain.combine`); A and g are (B, K, h, w) maps.
"""

from __future__ import annotations

import torch

from lumos.explain.base import BaseCAM, ChannelCAM, LayerState
from lumos.explain.combine import spatial_mean, spatial_sum
from lumos.explain.targets import Target

__all__ = ["GradCAM", "HiResCAM", "GradCAMElementWise", "GradCAMPlusPlus", "XGradCAM", "LayerCAM",
           "spatial_mean"]


def _grads(state: LayerState) -> torch.Tensor:
    if state.grads is None:  # pragma: no cover - the base always fills grads for gradient methods
        raise RuntimeError("gradient method called without gradients")
    return state.grads


class GradCAM(ChannelCAM):
    """Grad-CAM (Selvaraju et al. 2017): w_k = mean_hw g_k; cam = ReLU(Σ_k w_k A_k)."""

    name = "gradcam"

    def weights(self, *, state: LayerState, x: torch.Tensor, target: Target) -> torch.Tensor:
        return spatial_mean(_grads(state))


class HiResCAM(BaseCAM):
    """HiResCAM (Draelos & Carin 2020): cam = ReLU(Σ_k g_k ⊙ A_k) — the first-order Shapley map."""

    name = "hirescam"
    combine_kind = "element"

    def weights(self, *, state: LayerState, x: torch.Tensor, target: Target) -> torch.Tensor:
        return _grads(state)


class GradCAMElementWise(BaseCAM):
    """GradCAM-E (grad-cam ``GradCAMElementWise``): cam = Σ_k ReLU(g_k ⊙ A_k)."""

    name = "gradcam-e"
    combine_kind = "element_relu"

    def weights(self, *, state: LayerState, x: torch.Tensor, target: Target) -> torch.Tensor:
        return _grads(state)


class GradCAMPlusPlus(ChannelCAM):
    """Grad-CAM++ (Chattopadhyay et al. 2018, eq. 19, with grad-cam's g², g³ approximation).

    α = g² / (2g² + Σ_hw A · g³ + 1e-6), zero where g = 0; w_k = Σ_hw ReLU(g) α.
    """

    name = "gradcam++"

    def weights(self, *, state: LayerState, x: torch.Tensor, target: Target) -> torch.Tensor:
        g = _grads(state)
        g2 = g * g
        sum_a = spatial_sum(state.activations, keepdim=True)
        aij = g2 / (2 * g2 + sum_a * g2 * g + 1e-6)
        aij = torch.where(g != 0, aij, torch.zeros_like(aij))
        return spatial_sum(torch.relu(g) * aij)


class XGradCAM(ChannelCAM):
    """XGrad-CAM (Fu et al. 2020): w_k = Σ_hw g_k A_k / (Σ_hw A_k + 1e-7)."""

    name = "xgradcam"

    def weights(self, *, state: LayerState, x: torch.Tensor, target: Target) -> torch.Tensor:
        a = state.activations
        return spatial_sum(_grads(state) * a / (spatial_sum(a, keepdim=True) + 1e-7))


class LayerCAM(BaseCAM):
    """LayerCAM (Jiang et al. 2021): cam = Σ_k ReLU(g_k) ⊙ A_k."""

    name = "layercam"
    combine_kind = "element"

    def weights(self, *, state: LayerState, x: torch.Tensor, target: Target) -> torch.Tensor:
        return torch.relu(_grads(state))

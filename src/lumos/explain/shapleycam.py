"""ShapleyCAM (arXiv 2501.06261): CAMs as Shapley values of a second-order expansion of the utility.

With players the activations a_i of the target layer and the "content reserved" game v(S) = u(A_S), the
second-order Taylor expansion of u around A has the exact Shapley value φ_i = a_i·(g_i − ½(H·A)_i), where
g = ∂u/∂A and H·A is the Hessian-vector product computed by the base (only through the network after the
target layer). The three variants mirror GradCAM, HiResCAM and GradCAM-E with g replaced by g − ½·HA:

=============  ===============================  =========================================
variant        per-element weight               map
=============  ===============================  =========================================
"mean"         mean_hw (g − ½HA)_k  (per k)     ReLU(Σ_k w_k A_k)          ShapleyCAM
"hires"        (g − ½HA)                         ReLU(Σ_k (g − ½HA)_k ⊙ A_k) ShapleyCAM-H
"elementwise"  (g − ½HA)                         Σ_k ReLU((g − ½HA)_k ⊙ A_k) ShapleyCAM-E
=============  ===============================  =========================================

The default utility is ReST (y_c + log_softmax(y)_c): with a raw logit and a piecewise-linear head H·A = 0
and ShapleyCAM reduces to GradCAM.
"""

from __future__ import annotations

import torch
from torch import nn

from lumos.core.validation import check_choice
from lumos.explain.base import BaseCAM, LayerSpec, LayerState
from lumos.explain.combine import spatial_mean
from lumos.explain.reshape import ReshapeSpec
from lumos.explain.targets import ReST, Target

__all__ = ["ShapleyCAM", "ShapleyCAMH", "ShapleyCAME", "shapley_weights", "VARIANTS"]

VARIANTS = ("mean", "hires", "elementwise")
#: how each variant's weights meet the activations (:func:`lumos.explain.combine.combine`)
_KIND = {"mean": "channel", "hires": "element", "elementwise": "element_relu"}


def shapley_weights(state: LayerState) -> torch.Tensor:
    """Element weights g − ½·H·A, (B, K, h, w)."""
    if state.grads is None or state.hvp is None:  # pragma: no cover - the base fills both
        raise RuntimeError("ShapleyCAM needs gradients and Hessian-vector products")
    return state.grads - 0.5 * state.hvp


class ShapleyCAM(BaseCAM):
    """ShapleyCAM; ``variant`` "mean" (default, grad-cam's ``ShapleyCAM``), "hires" (-H) or "elementwise" (-E).

    Args:
        model: as :class:`~lumos.explain.base.BaseCAM`.
        target_layers: as :class:`~lumos.explain.base.BaseCAM`.
        reshape: as :class:`~lumos.explain.base.BaseCAM`.
        variant: which map to build from the element weights (see the module docstring).

    Default target: with ``targets=None`` lumos's ShapleyCAM explains :class:`~lumos.explain.targets.ReST` on
    the predicted class (the paper's utility). grad-cam's ``ShapleyCAM`` with ``targets=None`` explains the raw
    logit of the predicted class instead (so does :mod:`lumos.explain.grad_cam`); pass ``targets=Logit()`` here
    for that.
    """

    uses_hvp = True
    default_target: type[Target] = ReST
    name = "shapleycam"

    def __init__(self, model: nn.Module, target_layers: LayerSpec, *, variant: str = "mean",
                 reshape: ReshapeSpec = None) -> None:
        self.variant = check_choice(variant, "variant", VARIANTS, owner=type(self).__name__)
        self.combine_kind = _KIND[self.variant]
        super().__init__(model, target_layers, reshape=reshape)

    def weights(self, *, state: LayerState, x: torch.Tensor, target: Target) -> torch.Tensor:
        w = shapley_weights(state)
        return spatial_mean(w) if self.variant == "mean" else w


class ShapleyCAMH(ShapleyCAM):
    """ShapleyCAM-H: ReLU(Σ_k (g − ½HA)_k ⊙ A_k) — the HiResCAM counterpart."""

    name = "shapleycam-h"

    def __init__(self, model: nn.Module, target_layers: LayerSpec, *, reshape: ReshapeSpec = None) -> None:
        super().__init__(model, target_layers, variant="hires", reshape=reshape)


class ShapleyCAME(ShapleyCAM):
    """ShapleyCAM-E: Σ_k ReLU((g − ½HA)_k ⊙ A_k) — the GradCAM-E counterpart."""

    name = "shapleycam-e"

    def __init__(self, model: nn.Module, target_layers: LayerSpec, *, reshape: ReshapeSpec = None) -> None:
        super().__init__(model, target_layers, variant="elementwise", reshape=reshape)

"""The CAM classes with grad-cam's constructor and call signatures, each a thin subclass of lumos's method.

``Method(model, target_layers, reshape_transform=None)``; ``cam(input_tensor, targets=None, aug_smooth=False,
eigen_smooth=False)`` → numpy (N, H, W) float32; ``cam.outputs`` is the model output of the last call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from lumos.explain import gradcam as _g
from lumos.explain import scorecam as _s
from lumos.explain import shapleycam as _sh
from lumos.explain.base import BaseCAM
from lumos.explain.targets import Logit, Target

__all__ = ["GradCAM", "HiResCAM", "GradCAMElementWise", "GradCAMPlusPlus", "XGradCAM", "LayerCAM", "ScoreCAM",
           "ShapleyCAM"]


class _GradCamAPI(BaseCAM):
    """grad-cam's signatures over a lumos method (the lumos class is the second base)."""

    default_target: type[Target] = Logit  # grad-cam: ClassifierOutputTarget(argmax) when targets=None
    aug_fixes_classes: ClassVar[bool] = False  # grad-cam: each augmented view re-predicts its class

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module] | nn.Module | str,
                 reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__(model, target_layers, reshape=reshape_transform)

    def __call__(self, input_tensor: torch.Tensor, targets: Any = None, aug_smooth: bool = False,
                 eigen_smooth: bool = False) -> np.ndarray:
        """input_tensor (N, C, H, W) → grayscale CAMs, numpy (N, H, W) float32 in [0, 1]."""
        cams = super().__call__(input_tensor, targets, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth)
        return cams.detach().float().cpu().numpy()

    @property
    def outputs(self) -> Any:
        """The model output of the last call (grad-cam's ``cam.outputs``)."""
        return self.outputs_


class GradCAM(_GradCamAPI, _g.GradCAM):
    """grad-cam's ``GradCAM`` on :class:`lumos.explain.GradCAM`."""


class HiResCAM(_GradCamAPI, _g.HiResCAM):
    """grad-cam's ``HiResCAM`` on :class:`lumos.explain.HiResCAM`."""


class GradCAMElementWise(_GradCamAPI, _g.GradCAMElementWise):
    """grad-cam's ``GradCAMElementWise`` on :class:`lumos.explain.GradCAMElementWise`."""


class GradCAMPlusPlus(_GradCamAPI, _g.GradCAMPlusPlus):
    """grad-cam's ``GradCAMPlusPlus`` on :class:`lumos.explain.GradCAMPlusPlus`."""


class XGradCAM(_GradCamAPI, _g.XGradCAM):
    """grad-cam's ``XGradCAM`` on :class:`lumos.explain.XGradCAM`."""


class LayerCAM(_GradCamAPI, _g.LayerCAM):
    """grad-cam's ``LayerCAM`` on :class:`lumos.explain.LayerCAM`."""


class ScoreCAM(_GradCamAPI, _s.ScoreCAM):
    """grad-cam's ``ScoreCAM`` on :class:`lumos.explain.ScoreCAM`; set ``cam.batch_size`` as in grad-cam
    (default 16)."""

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module] | nn.Module | str,
                 reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        _s.ScoreCAM.__init__(self, model, target_layers, reshape=reshape_transform, batch_size=16)


class ShapleyCAM(_GradCamAPI, _sh.ShapleyCAM):
    """grad-cam's ``ShapleyCAM`` (the "mean" variant) on :class:`lumos.explain.ShapleyCAM`.

    With ``targets=None`` it explains the predicted class's raw logit, as grad-cam does; the paper's utility
    is ``targets=[ClassifierOutputReST(c) for c in classes]`` (lumos's own ShapleyCAM defaults to it).
    """

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module] | nn.Module | str,
                 reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        _sh.ShapleyCAM.__init__(self, model, target_layers, variant="mean", reshape=reshape_transform)

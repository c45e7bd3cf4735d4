"""CAM explainers: GradCAM, HiResCAM, GradCAM-E, ShapleyCAM (and -H, -E), GradCAM++, XGradCAM, LayerCAM, ScoreCAM.

Example::

    from lumos.explain import ShapleyCAM
    from lumos.explain.targets import ReST

    with ShapleyCAM(model, ["layer4"]) as cam:          # modules or dotted names
        maps = cam(x)                                  # (B, H, W) in [0, 1]; ReST on the predicted class
        maps = cam(x, targets=ReST([3, 7]))            # explicit classes per sample
        maps = cam(x, aug_smooth=True, eigen_smooth=True)  # grad-cam's test-time augmentation / PCA smoothing

Defaults: with ``targets=None`` every method explains the predicted class's raw logit, except ShapleyCAM, whose
default utility is ReST (the paper's); pass ``targets=Logit()`` for the raw logit. Models that return per-pixel
scores or dicts are explained through a target that reduces them (``targets=Segmentation(c, mask, key="out")``).
grad-cam scripts run unchanged on lumos through :mod:`lumos.explain.grad_cam` (swap the import prefix);
faithfulness metrics live in :mod:`lumos.explain.metrics`.
"""

from __future__ import annotations

from lumos.core.registry import Registry
from lumos.explain.base import BaseCAM, ChannelCAM, LayerState
from lumos.explain.gradcam import GradCAM, GradCAMElementWise, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from lumos.explain.scorecam import ScoreCAM
from lumos.explain.shapleycam import ShapleyCAM, ShapleyCAME, ShapleyCAMH

__all__ = [
    "BaseCAM",
    "ChannelCAM",
    "LayerState",
    "GradCAM",
    "HiResCAM",
    "GradCAMElementWise",
    "ShapleyCAM",
    "ShapleyCAMH",
    "ShapleyCAME",
    "GradCAMPlusPlus",
    "XGradCAM",
    "LayerCAM",
    "ScoreCAM",
    "METHODS",
    "get_method",
]

#: CLI / evaluation names → classes (names are case-insensitive; aliases accepted).
METHODS: Registry[type[BaseCAM]] = Registry("CAM method", param="method", case_insensitive=True,
                                            expects=lambda c: isinstance(c, type) and issubclass(c, BaseCAM),
                                            expects_text="a BaseCAM subclass")
METHODS.register("gradcam", GradCAM)
METHODS.register("hirescam", HiResCAM)
METHODS.register("gradcam-e", GradCAMElementWise, aliases=("gradcamelementwise",))
METHODS.register("shapleycam", ShapleyCAM, aliases=("shapleycam_mean",))
METHODS.register("shapleycam-h", ShapleyCAMH, aliases=("shapleycamh", "shapleycam_hires"))
METHODS.register("shapleycam-e", ShapleyCAME, aliases=("shapleycame",))
METHODS.register("gradcam++", GradCAMPlusPlus, aliases=("gradcampp", "gradcamplusplus"))
METHODS.register("xgradcam", XGradCAM)
METHODS.register("layercam", LayerCAM)
METHODS.register("scorecam", ScoreCAM)


def get_method(name: str) -> type[BaseCAM]:
    """Method class by CLI name (case-insensitive; e.g. "shapleycam", "gradcam++", "shapleycam-h")."""
    return METHODS.get(name)

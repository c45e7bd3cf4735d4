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

from lumos.core.errors import bad_param
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

#: CLI / evaluation names → classes.
METHODS: dict[str, type[BaseCAM]] = {
    "gradcam": GradCAM,
    "hirescam": HiResCAM,
    "gradcam-e": GradCAMElementWise,
    "shapleycam": ShapleyCAM,
    "shapleycam-h": ShapleyCAMH,
    "shapleycam-e": ShapleyCAME,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "scorecam": ScoreCAM,
}

_ALIASES = {"gradcamelementwise": "gradcam-e", "gradcampp": "gradcam++", "gradcamplusplus": "gradcam++",
            "shapleycamh": "shapleycam-h", "shapleycame": "shapleycam-e", "shapleycam_hires": "shapleycam-h",
            "shapleycam_mean": "shapleycam"}


def get_method(name: str) -> type[BaseCAM]:
    """Method class by CLI name (case-insensitive; e.g. "shapleycam", "gradcam++", "shapleycam-h")."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in METHODS:
        raise bad_param("method", "one of " + ", ".join(METHODS), name)
    return METHODS[key]

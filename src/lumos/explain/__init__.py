"""CAM explainers: GradCAM, HiResCAM, GradCAM-E, ShapleyCAM (and -H, -E), GradCAM++, XGradCAM, LayerCAM, ScoreCAM.

Example::

    from lumos.explain import ShapleyCAM
    from lumos.explain.targets import ReST

    with ShapleyCAM(model, ["layer4"]) as cam:          # modules or dotted names
        maps = cam(x)                                  # (B, H, W) in [0, 1]; ReST on the predicted class
        maps = cam(x, targets=ReST([3, 7]))            # explicit classes per sample

Faithfulness metrics live in :mod:`lumos.explain.metrics`.
"""

from __future__ import annotations

from lumos.core.extras import require_extra

require_extra("lumos.explain", "vision", "report")

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

"""CAM post-processing in torch, on the model's device, in grad-cam 1.5.7's order (so maps are comparable).

Per layer: ReLU → per-image min-max (``x −= min; x /= max + 1e-7``) → bilinear resize to the input size
(half-pixel centres, i.e. ``align_corners=False``, which is what ``cv2.resize(..., INTER_LINEAR)`` does).
Across layers: stack → ReLU → mean → per-image min-max again. The numpy/cv2 twin is
:func:`lumos.explain.naive.postprocess_reference`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["minmax", "scale_layer_cam", "aggregate_layers", "postprocess", "EPS"]

#: grad-cam's ``scale_cam_image`` epsilon.
EPS = 1e-7


def minmax(cam: torch.Tensor) -> torch.Tensor:
    """Per-image min-max: (B, H, W) → (B, H, W), ``(x − min) / (max(x − min) + 1e-7)``."""
    flat = cam.flatten(1)
    shifted = cam - flat.min(dim=1).values[:, None, None]
    return shifted / (shifted.flatten(1).max(dim=1).values[:, None, None] + EPS)


def scale_layer_cam(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """One layer's raw map (B, h, w) → ReLU → min-max → bilinear resize → (B, H, W) with size = (H, W)."""
    cam = minmax(torch.relu(cam))
    if tuple(cam.shape[-2:]) != tuple(size):
        cam = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return cam


def aggregate_layers(cams: list[torch.Tensor]) -> torch.Tensor:
    """Scaled per-layer maps, each (B, H, W) → ReLU → mean over layers → min-max → (B, H, W) in [0, 1]."""
    stacked = torch.relu(torch.stack(cams, dim=1))  # (B, L, H, W)
    return minmax(stacked.mean(dim=1))


def postprocess(raw: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """Raw per-layer maps [(B, h_l, w_l)] → final CAMs (B, H, W) in [0, 1], size = (H, W).

    Twin: :func:`lumos.explain.naive.postprocess_reference` (same arguments, numpy).
    """
    return aggregate_layers([scale_layer_cam(r, size) for r in raw])

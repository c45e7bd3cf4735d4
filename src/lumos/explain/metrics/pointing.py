"""Localisation against ground-truth boxes: the energy-based pointing game (Score-CAM, Wang et al. 2020) and
the classic pointing game (Zhang et al. 2016).

Boxes are (B, 4) ``x0, y0, x1, y1`` in pixels with exclusive ends, or boolean masks (B, H, W).
"""

from __future__ import annotations

import torch

from lumos.core.errors import bad_param
from lumos.core.validation import check_tensor

__all__ = ["box_masks", "energy_pointing_game", "pointing_game"]


def box_masks(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 4) boxes ``x0, y0, x1, y1`` (exclusive ends) → boolean masks (B, H, W) for size = (H, W)."""
    check_tensor(boxes, "boxes", ndim=2, shape=(None, 4), owner="box_masks")
    h, w = size
    ys = torch.arange(h, device=boxes.device)[None, :, None]
    xs = torch.arange(w, device=boxes.device)[None, None, :]
    b = boxes.round().long()
    return ((ys >= b[:, 1, None, None]) & (ys < b[:, 3, None, None])
            & (xs >= b[:, 0, None, None]) & (xs < b[:, 2, None, None]))


def _masks(cams: torch.Tensor, boxes: torch.Tensor, owner: str) -> torch.Tensor:
    check_tensor(cams, "cams", ndim=3, owner=owner)
    if boxes.dim() == 3 and boxes.dtype == torch.bool:
        masks = boxes
    else:
        masks = box_masks(boxes, (cams.shape[1], cams.shape[2]))
    if masks.shape != cams.shape:
        raise bad_param("boxes", f"{cams.shape[0]} boxes or masks of shape {tuple(cams.shape)}",
                        f"shape {tuple(boxes.shape)}", owner=owner)
    return masks.to(cams.device)


def energy_pointing_game(cams: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Share of each map's energy inside its box: Σ_in cam / Σ cam (0 for an all-zero map). → (B,) float64."""
    masks = _masks(cams, boxes, "energy_pointing_game")
    c = cams.double().clamp_min(0)
    total = c.sum(dim=(1, 2))
    inside = (c * masks).sum(dim=(1, 2))
    return torch.where(total > 0, inside / total.clamp_min(1e-300), torch.zeros_like(total)).cpu()


def pointing_game(cams: torch.Tensor, boxes: torch.Tensor, tolerance: int = 0) -> torch.Tensor:
    """Hit (1.0) when the map's maximum lies within ``tolerance`` pixels of the box, else 0.0. → (B,) float64."""
    masks = _masks(cams, boxes, "pointing_game")
    if tolerance > 0:
        k = 2 * tolerance + 1
        masks = torch.nn.functional.max_pool2d(masks[:, None].float(), k, stride=1, padding=tolerance)[:, 0] > 0
    idx = cams.flatten(1).argmax(dim=1)
    return masks.flatten(1).gather(1, idx[:, None]).squeeze(1).double().cpu()

"""Deletion and insertion curves (Petsiuk et al., RISE 2018) and their areas.

Pixels are ranked by the map (highest first, ties by position). Deletion: replace the top fraction f of
pixels with the baseline (default 0 in normalised space, i.e. the dataset-mean colour) and track the class
probability; insertion: start from the baseline and reveal the top fraction. ``steps + 1`` fractions
f = 0, 1/steps, …, 1; AUC by the trapezoid rule. Deletion ↓ is better, insertion ↑.
"""

from __future__ import annotations

import torch
from torch import nn

from lumos.core.validation import check_choice, check_finite, check_positive_int, check_tensor
from lumos.explain.metrics.faithfulness import class_probability

__all__ = ["perturbation_curve", "deletion_auc", "insertion_auc", "pixel_ranks"]


def pixel_ranks(cams: torch.Tensor) -> torch.Tensor:
    """Rank of each pixel (0 = most salient), (B, H, W) → (B, H, W) long; ties broken by position."""
    flat = cams.flatten(1)
    order = torch.argsort(-flat, dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks.view_as(cams)


@torch.no_grad()
def perturbation_curve(model: nn.Module, x: torch.Tensor, cams: torch.Tensor, classes: torch.Tensor, *,
                       mode: str = "deletion", steps: int = 16, baseline: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Class probability after removing (deletion) or revealing (insertion) the top fractions → (B, steps + 1).

    x (B, C, H, W) normalised; cams (B, H, W); classes (B,); ``baseline`` a number or a tensor broadcastable to x.
    """
    owner = "perturbation_curve"
    check_tensor(x, "x", ndim=4, owner=owner)
    b, _, h, w = x.shape
    check_tensor(cams, "cams", shape=(b, h, w), owner=owner)
    check_tensor(classes, "classes", shape=(b,), owner=owner)
    check_finite(x, "x", owner=owner)
    check_finite(cams, "cams", owner=owner)
    check_choice(mode, "mode", ("deletion", "insertion"), owner=owner)
    check_positive_int(steps, "steps", owner=owner)
    base = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    ranks = pixel_ranks(cams.to(x.device))[:, None]  # (B, 1, H, W)
    n_pix = cams.shape[-1] * cams.shape[-2]
    probs = []
    for s in range(steps + 1):
        top = ranks < round(s * n_pix / steps)
        if mode == "deletion":
            xs = torch.where(top, base, x)
        else:
            xs = torch.where(top, x, base)
        probs.append(class_probability(model, xs, classes.to(x.device)))
    return torch.stack(probs, dim=1).double().cpu()


def _auc(curve: torch.Tensor) -> torch.Tensor:
    steps = curve.shape[1] - 1
    return torch.trapezoid(curve, dx=1.0 / steps, dim=1)


def deletion_auc(model: nn.Module, x: torch.Tensor, cams: torch.Tensor, classes: torch.Tensor, *,
                 steps: int = 16, baseline: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Area under the deletion curve per image (B,) — lower is more faithful."""
    return _auc(perturbation_curve(model, x, cams, classes, mode="deletion", steps=steps, baseline=baseline))


def insertion_auc(model: nn.Module, x: torch.Tensor, cams: torch.Tensor, classes: torch.Tensor, *,
                  steps: int = 16, baseline: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Area under the insertion curve per image (B,) — higher is more faithful."""
    return _auc(perturbation_curve(model, x, cams, classes, mode="insertion", steps=steps, baseline=baseline))

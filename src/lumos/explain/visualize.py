"""Overlays of CAMs on images (uint8 RGB arrays and PNG bytes) and grids for reports."""

from __future__ import annotations

import io

import numpy as np
import torch

__all__ = ["overlay", "png_bytes", "overlay_grid"]


def overlay(image: torch.Tensor, cam: torch.Tensor, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """image (3 or 1, H, W) in [0, 1] and cam (H, W) in [0, 1] → (H, W, 3) uint8 heat-map blend."""
    from matplotlib import colormaps

    img = image.detach().float().cpu().clamp(0, 1)
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    heat = colormaps[cmap](cam.detach().float().cpu().clamp(0, 1).numpy())[..., :3]
    out = (1 - alpha) * img.permute(1, 2, 0).numpy() + alpha * heat
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 → PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def overlay_grid(images: torch.Tensor, cams_by_method: dict[str, torch.Tensor], titles: list[str] | None = None):
    """A matplotlib figure: one row per image, the image then one overlay per method. images (N, C, H, W)."""
    import matplotlib.pyplot as plt

    n, m = images.shape[0], len(cams_by_method)
    fig, axes = plt.subplots(n, m + 1, figsize=(1.6 * (m + 1), 1.6 * n), squeeze=False)
    for i in range(n):
        img = images[i].detach().cpu().clamp(0, 1)
        axes[i, 0].imshow(img.permute(1, 2, 0).numpy() if img.shape[0] == 3 else img[0].numpy(), cmap="gray")
        axes[i, 0].set_title(titles[i] if titles else "image", fontsize=7)
        for j, (name, cams) in enumerate(cams_by_method.items(), start=1):
            axes[i, j].imshow(overlay(images[i], cams[i]))
            if i == 0:
                axes[i, j].set_title(name, fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig

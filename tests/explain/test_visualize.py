import numpy as np
import torch

from lumos.explain.visualize import overlay, overlay_grid, png_bytes


def test_overlay_blend_and_png():
    img = torch.zeros(3, 4, 5)
    cam = torch.zeros(4, 5)
    cam[0, 0] = 1.0
    rgb = overlay(img, cam, alpha=1.0)
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0] > 100 and rgb[1, 1, 2] > 100  # jet: 1 → red, 0 → blue
    gray = overlay(torch.ones(1, 4, 5), cam, alpha=0.0)
    assert (gray == 255).all()
    assert png_bytes(rgb)[:4] == b"\x89PNG"


def test_overlay_grid_figure():
    import matplotlib.pyplot as plt

    fig = overlay_grid(torch.rand(2, 3, 8, 8), {"a": torch.rand(2, 8, 8), "b": torch.rand(2, 8, 8)}, ["x", "y"])
    assert len(fig.axes) == 6
    plt.close(fig)

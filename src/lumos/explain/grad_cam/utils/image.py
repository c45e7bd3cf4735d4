"""grad-cam's image helpers without OpenCV: ``show_cam_on_image``, ``preprocess_image``, ``deprocess_image``,
``scale_cam_image``.

``show_cam_on_image`` colours with OpenCV's COLORMAP_JET table (stored below, byte for byte what
``cv2.applyColorMap`` gives; a test checks it against cv2), so overlays equal grad-cam's without importing cv2.
Other OpenCV colormaps need ``opencv-python``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lumos.core.errors import LumosError, bad_param
from lumos.explain.postprocess import minmax

__all__ = ["show_cam_on_image", "preprocess_image", "deprocess_image", "scale_cam_image", "COLORMAP_JET",
           "JET_BGR"]

#: OpenCV's ``cv2.COLORMAP_JET`` constant
COLORMAP_JET = 2

#: OpenCV's JET colour table, (256, 3) uint8 in BGR order (``cv2.applyColorMap(arange(256), COLORMAP_JET)``)
JET_BGR = np.frombuffer(bytes.fromhex(
    "8000008400008800008c00009000009400009800009c0000a00000a40000a80000ac0000b00000b40000b80000bc0000c000"
    "00c40000c80000cc0000d00000d40000d80000dc0000e00000e40000e80000ec0000f00000f40000f80000fc0000ff0000ff"
    "0400ff0800ff0c00ff1000ff1400ff1800ff1c00ff2000ff2400ff2800ff2c00ff3000ff3400ff3800ff3c00ff4000ff4400"
    "ff4800ff4c00ff5000ff5400ff5800ff5c00ff6000ff6400ff6800ff6c00ff7000ff7400ff7800ff7c00ff8000ff8400ff88"
    "00ff8c00ff9000ff9400ff9800ff9c00ffa000ffa400ffa800ffac00ffb000ffb400ffb800ffbc00ffc000ffc400ffc800ff"
    "cc00ffd000ffd400ffd800ffdc00ffe000ffe400ffe800ffec00fff000fff400fff800fffc00feff02faff06f6ff0af2ff0e"
    "eeff12eaff16e6ff1ae2ff1edeff22daff26d6ff2ad2ff2eceff32caff36c6ff3ac2ff3ebeff42baff46b6ff4ab2ff4eaeff"
    "52aaff56a6ff5aa2ff5e9eff629aff6696ff6a92ff6e8eff728aff7686ff7a82ff7e7eff827aff8676ff8a72ff8e6eff926a"
    "ff9666ff9a62ff9e5effa25affa656ffaa52ffae4effb24affb646ffba42ffbe3effc23affc636ffca32ffce2effd22affd6"
    "26ffda22ffde1effe21affe616ffea12ffee0efff20afff606fffa01fffe00fcff00f8ff00f4ff00f0ff00ecff00e8ff00e4"
    "ff00e0ff00dcff00d8ff00d4ff00d0ff00ccff00c8ff00c4ff00c0ff00bcff00b8ff00b4ff00b0ff00acff00a8ff00a4ff00"
    "a0ff009cff0098ff0094ff0090ff008cff0088ff0084ff0080ff007cff0078ff0074ff0070ff006cff0068ff0064ff0060ff"
    "005cff0058ff0054ff0050ff004cff0048ff0044ff0040ff003cff0038ff0034ff0030ff002cff0028ff0024ff0020ff001c"
    "ff0018ff0014ff0010ff000cff0008ff0004ff0000ff0000fc0000f80000f40000f00000ec0000e80000e40000e00000dc00"
    "00d80000d40000d00000cc0000c80000c40000c00000bc0000b80000b40000b00000ac0000a80000a40000a000009c000098"
    "00009400009000008c000088000084000080"
), dtype=np.uint8).reshape(256, 3)


def _apply_colormap(gray: np.ndarray, colormap: int) -> np.ndarray:
    """uint8 (H, W) → BGR (H, W, 3) uint8, as ``cv2.applyColorMap``."""
    if colormap == COLORMAP_JET:
        return JET_BGR[gray]
    try:
        import cv2
    except ImportError:
        raise LumosError(f"colormap={colormap} needs OpenCV (pip install opencv-python); without it only "
                         "COLORMAP_JET (2) is available.") from None
    return cv2.applyColorMap(gray, colormap)


def show_cam_on_image(img: np.ndarray, mask: np.ndarray, use_rgb: bool = False, colormap: int = COLORMAP_JET,
                      image_weight: float = 0.5) -> np.ndarray:
    """Overlay a CAM on an image: ``image_weight · img + (1 − image_weight) · heatmap``, rescaled to its max.

    Args:
        img: (H, W, 3) float image in [0, 1] (RGB with ``use_rgb=True``, else BGR).
        mask: (H, W) CAM in [0, 1].
        use_rgb: return RGB (else OpenCV's BGR).
        colormap: an OpenCV colormap id (JET without OpenCV; others need it).
        image_weight: in [0, 1].

    Returns:
        (H, W, 3) uint8.
    """
    heatmap = _apply_colormap(np.asarray(255 * mask, dtype=np.uint8), colormap)
    if use_rgb:
        heatmap = heatmap[..., ::-1]
    heatmap = np.float32(heatmap) / 255
    if np.max(img) > 1:
        raise bad_param("img", "a float32 image in [0, 1]", f"max {float(np.max(img))}", owner="show_cam_on_image",
                        fix="Divide a uint8 image by 255.")
    if image_weight < 0 or image_weight > 1:
        raise bad_param("image_weight", "in [0, 1]", image_weight, owner="show_cam_on_image")
    cam = (1 - image_weight) * heatmap + image_weight * img
    cam = cam / np.max(cam)
    return np.asarray(255 * cam, dtype=np.uint8)


def preprocess_image(img: np.ndarray, mean: Sequence[float] = (0.5, 0.5, 0.5),
                     std: Sequence[float] = (0.5, 0.5, 0.5)) -> torch.Tensor:
    """(H, W, C) image → normalised (1, C, H, W) tensor (torchvision's ``ToTensor`` then ``Normalize``:
    uint8 is scaled by 1/255, floats are kept)."""
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise bad_param("img", "an (H, W, C) or (H, W) image", f"shape {arr.shape}", owner="preprocess_image")
    t = torch.from_numpy(arr.transpose(2, 0, 1).copy())
    t = t.float().div(255) if t.dtype == torch.uint8 else t
    m = torch.as_tensor(mean, dtype=t.dtype).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=t.dtype).view(-1, 1, 1)
    return ((t - m) / s).unsqueeze(0)


def deprocess_image(img: np.ndarray) -> np.ndarray:
    """Standardise, scale to mean 0.5 and std 0.1, clip to [0, 1] → uint8 (for guided-backprop images)."""
    img = img - np.mean(img)
    img = img / (np.std(img) + 1e-5)
    img = img * 0.1 + 0.5
    return np.asarray(np.clip(img, 0, 1) * 255, dtype=np.uint8)


def scale_cam_image(cam: np.ndarray, target_size: tuple[int, int] | None = None) -> np.ndarray:
    """Per image min-max (``x − min``, ``/ (max + 1e-7)``), then bilinear resize to ``target_size`` = (W, H).
    cam (N, h, w) → float32 (N, H, W)."""
    t = minmax(torch.as_tensor(np.float32(cam)))
    if target_size is not None:
        if len(target_size) != 2:
            raise bad_param("target_size", "(width, height) of a 2-D map", target_size, owner="scale_cam_image")
        t = F.interpolate(t[:, None], size=(target_size[1], target_size[0]), mode="bilinear",
                          align_corners=False)[:, 0]
    return t.numpy().astype(np.float32)

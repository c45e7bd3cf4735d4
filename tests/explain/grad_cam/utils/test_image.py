"""grad-cam's image helpers, reimplemented without OpenCV, against grad-cam's own (which use cv2)."""

import numpy as np
import pytest
import torch

pytest.importorskip("pytorch_grad_cam")
cv2 = pytest.importorskip("cv2")
from pytorch_grad_cam.utils import image as ref  # noqa: E402

from lumos.core.errors import LumosError  # noqa: E402
from lumos.explain.grad_cam.utils import image as ours  # noqa: E402


def test_jet_table_is_opencvs():
    gray = np.arange(256, dtype=np.uint8)[:, None]
    assert np.array_equal(ours.JET_BGR, cv2.applyColorMap(gray, cv2.COLORMAP_JET)[:, 0])
    assert ours.COLORMAP_JET == cv2.COLORMAP_JET


@pytest.mark.parametrize("use_rgb,weight", [(False, 0.5), (True, 0.5), (True, 0.2), (False, 1.0)])
def test_show_cam_on_image_equals_grad_cam(use_rgb, weight):
    rng = np.random.default_rng(0)
    img = rng.random((9, 7, 3)).astype(np.float32)
    mask = rng.random((9, 7)).astype(np.float32)
    expected = ref.show_cam_on_image(img, mask, use_rgb=use_rgb, image_weight=weight)
    got = ours.show_cam_on_image(img, mask, use_rgb=use_rgb, image_weight=weight)
    assert got.dtype == np.uint8 and np.array_equal(got, expected)
    other = ours.show_cam_on_image(img, mask, colormap=cv2.COLORMAP_VIRIDIS)  # other colormaps go through cv2
    assert np.array_equal(other, ref.show_cam_on_image(img, mask, colormap=cv2.COLORMAP_VIRIDIS))


def test_show_cam_on_image_errors():
    with pytest.raises(LumosError, match="in \\[0, 1\\]"):
        ours.show_cam_on_image(np.full((2, 2, 3), 255.0), np.zeros((2, 2)))
    with pytest.raises(LumosError, match="image_weight"):
        ours.show_cam_on_image(np.zeros((2, 2, 3)), np.zeros((2, 2)), image_weight=2)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_preprocess_image_equals_grad_cam(dtype):
    rng = np.random.default_rng(1)
    img = (rng.random((6, 5, 3)) * (255 if dtype == np.uint8 else 1)).astype(dtype)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    for kwargs in ({}, {"mean": mean, "std": std}):
        expected = ref.preprocess_image(img, **kwargs)
        got = ours.preprocess_image(img, **kwargs)
        assert got.shape == (1, 3, 6, 5) and got.dtype == expected.dtype
        assert torch.allclose(got, expected, atol=1e-6)


def test_deprocess_and_scale_cam_image_equal_grad_cam():
    rng = np.random.default_rng(2)
    img = rng.normal(size=(6, 5, 3)).astype(np.float32)
    assert np.array_equal(ours.deprocess_image(img), ref.deprocess_image(img))
    cam = rng.normal(size=(2, 4, 3)).astype(np.float32)
    for size in (None, (12, 16), (2, 3)):
        expected = ref.scale_cam_image(cam, size)
        got = ours.scale_cam_image(cam, size)
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-5

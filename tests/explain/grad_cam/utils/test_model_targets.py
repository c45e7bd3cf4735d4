"""grad-cam's target classes on lumos: the same values on one sample's output and on a batch."""

import numpy as np
import pytest
import torch

pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils import model_targets as ref  # noqa: E402

from lumos.explain.grad_cam.utils import model_targets as ours  # noqa: E402


@pytest.mark.parametrize("name", ["ClassifierOutputTarget", "ClassifierOutputSoftmaxTarget", "ClassifierOutputReST"])
def test_classifier_targets_equal_grad_cams(name):
    y = torch.randn(3, 6)
    r, o = getattr(ref, name)(4), getattr(ours, name)(4)
    assert o.category == 4
    torch.testing.assert_close(o(y[0]), r(y[0]))  # one sample (C,) → scalar, as grad-cam's base calls it
    torch.testing.assert_close(o(y), r(y))  # a batch (B, C) → (B,)


def test_segmentation_and_binary_targets_equal_grad_cams():
    y = torch.randn(4, 5, 7)  # one sample's (C, H, W) scores
    mask = (np.random.default_rng(0).random((5, 7)) > 0.5).astype(np.float32)
    torch.testing.assert_close(ours.SemanticSegmentationTarget(2, mask)(y), ref.SemanticSegmentationTarget(2, mask)(y))
    logit = torch.randn(1)
    for c in (0, 1):
        torch.testing.assert_close(ours.BinaryClassifierOutputTarget(c)(logit), ref.BinaryClassifierOutputTarget(c)(logit))

"""Gradient CAMs: parity with grad-cam 1.5.7 and the paper's equivalences."""

import pytest
import torch

from lumos.explain import (
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from lumos.explain.targets import Logit
from lumos.testing import assert_close

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

PAIRS = [
    (GradCAM, pgc.GradCAM),
    (HiResCAM, pgc.HiResCAM),
    (GradCAMElementWise, pgc.GradCAMElementWise),
    (GradCAMPlusPlus, pgc.GradCAMPlusPlus),
    (XGradCAM, pgc.XGradCAM),
    (LayerCAM, pgc.LayerCAM),
]


@pytest.mark.parametrize("layers", [["layer4"], ["layer4[-1].conv2"], ["layer3", "layer4"]])
def test_parity_with_grad_cam(resnet18, layers):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64)
    modules = [resnet18.get_submodule(n.replace("[-1]", ".1")) for n in layers]
    # every method on the last conv (the informative setting); GradCAM / HiResCAM on all three settings
    pairs = PAIRS if layers == ["layer4[-1].conv2"] else PAIRS[:2]
    for ours_cls, ref_cls in pairs:
        ours = ours_cls(resnet18, layers)(x)
        with ref_cls(resnet18, modules) as ref:
            expected = torch.from_numpy(ref(x, None))
        assert ours.shape == (2, 64, 64)
        assert_close(f"{ours_cls.__name__} {layers}", ours, expected, atol=1e-4, rtol=0)


def test_scorecam_parity_with_grad_cam(tiny_cnn):
    x = torch.randn(2, 3, 12, 12)
    ours = ScoreCAM(tiny_cnn, "features.3", batch_size=3)(x, targets=[1, 3])
    ref = pgc.ScoreCAM(tiny_cnn, [tiny_cnn.features[3]])
    expected = torch.from_numpy(ref(x, [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]))
    assert_close("ScoreCAM", ours, expected, atol=1e-4, rtol=0)


def test_gradcam_equals_hirescam_at_the_layer_feeding_gap(resnet18):
    x = torch.randn(2, 3, 48, 48)
    assert_close("GradCAM vs HiResCAM", GradCAM(resnet18, "layer4")(x), HiResCAM(resnet18, "layer4")(x), atol=1e-5)
    assert_close("GradCAM vs XGradCAM", GradCAM(resnet18, "layer4")(x), XGradCAM(resnet18, "layer4")(x), atol=1e-4)


def test_gradcam_e_equals_layercam_on_post_relu_activations(tiny_cnn):
    """ReLU(g·a) = ReLU(g)·a when a ≥ 0."""
    x = torch.randn(3, 3, 16, 16)
    for layer in ("features.1", "features.3"):
        assert_close(layer, GradCAMElementWise(tiny_cnn, layer)(x), LayerCAM(tiny_cnn, layer)(x), atol=1e-6)


def test_default_target_is_predicted_logit(tiny_cnn):
    x = torch.randn(4, 3, 16, 16)
    cam = GradCAM(tiny_cnn, "features.3")
    a = cam(x)
    pred = tiny_cnn(x).argmax(1)
    assert torch.equal(cam.classes_, pred)
    assert_close("explicit", cam(x, targets=Logit(pred)), a, atol=0)
    assert_close("ints", cam(x, targets=pred.tolist()), a, atol=0)

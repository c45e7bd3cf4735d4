"""ShapleyCAM: the paper's equivalences, parity with grad-cam's ShapleyCAM + ReST, batching, transformers."""

import pytest
import torch

from lumos.core.errors import LumosError
from lumos.explain import GradCAM, GradCAMElementWise, HiResCAM, ShapleyCAM, ShapleyCAME, ShapleyCAMH
from lumos.explain.base import layer_states
from lumos.explain.naive import explain_one_by_one, layer_states_reference
from lumos.explain.targets import Logit, ReST
from lumos.testing import assert_close

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST  # noqa: E402


@pytest.mark.parametrize("layer", ["layer4", "layer4[-1].conv2"])
def test_parity_with_grad_cam_shapleycam_rest(resnet18, layer):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 64, 64)
    ours_cam = ShapleyCAM(resnet18, layer)
    ours = ours_cam(x)  # default: ReST on the predicted class
    classes = resnet18(x).argmax(1)
    assert torch.equal(ours_cam.classes_, classes)
    module = resnet18.get_submodule(layer.replace("[-1]", ".1"))
    with pgc.ShapleyCAM(resnet18, [module]) as ref:
        expected = torch.from_numpy(ref(x, [ClassifierOutputReST(int(c)) for c in classes]))
    assert_close(f"ShapleyCAM {layer}", ours, expected, atol=1e-4, rtol=0)


def test_relu_head_raw_logit_gives_gradcam(resnet18):
    """Piecewise-linear network after the layer + raw logit → HA = 0 → ShapleyCAM == GradCAM (all variants)."""
    x = torch.randn(2, 3, 48, 48)
    layer = "layer4[-1].conv2"
    (s,) = layer_states(resnet18, layer, x, Logit(None))
    assert float(s.hvp.abs().max()) < 1e-6 * float(s.grads.abs().max())
    pairs = [(ShapleyCAM, GradCAM), (ShapleyCAMH, HiResCAM), (ShapleyCAME, GradCAMElementWise)]
    for shap, base in pairs:
        assert_close(shap.__name__, shap(resnet18, layer)(x, targets=Logit()), base(resnet18, layer)(x), atol=1e-5)


def test_rest_changes_the_map_below_the_pooling_layer(resnet18):
    """With ReST the HVP is non-zero and ShapleyCAM differs from GradCAM (so the test above is not vacuous)."""
    x = torch.randn(2, 3, 48, 48)
    (s,) = layer_states(resnet18, "layer4[-1].conv2", x)
    assert float(s.hvp.abs().max()) > 1e-3 * float(s.grads.abs().max())


def test_shapleycam_equals_h_variant_at_the_layer_feeding_gap(resnet18):
    x = torch.randn(2, 3, 48, 48)
    assert_close("ShapleyCAM vs -H", ShapleyCAM(resnet18, "layer4")(x), ShapleyCAMH(resnet18, "layer4")(x), atol=1e-5)
    assert_close("variant arg", ShapleyCAM(resnet18, "layer4", variant="hires")(x),
                 ShapleyCAMH(resnet18, "layer4")(x), atol=0)


def test_variants_and_bad_variant(tiny_cnn):
    x = torch.randn(2, 3, 16, 16)
    assert_close("-E", ShapleyCAM(tiny_cnn, "features.3", variant="elementwise")(x),
                 ShapleyCAME(tiny_cnn, "features.3")(x), atol=0)
    with pytest.raises(LumosError, match="variant"):
        ShapleyCAM(tiny_cnn, "features.3", variant="median")


@pytest.mark.parametrize("cls", [ShapleyCAM, ShapleyCAMH, ShapleyCAME])
def test_batch_equals_one_by_one(resnet18, tiny_cnn, cls):
    x = torch.randn(3, 3, 40, 40)
    method = cls(resnet18, ["layer3", "layer4[-1].conv2"]) if cls is ShapleyCAM else cls(tiny_cnn, ["features.0", "features.2"])
    x = x if cls is ShapleyCAM else x[..., :13, :11]
    assert_close(cls.__name__, method(x, targets=ReST([1, 2, 3])), explain_one_by_one(method, x, ReST([1, 2, 3])),
                 atol=1e-5)
    assert_close("default", method(x), explain_one_by_one(method, x), atol=1e-5)


def test_rest_is_per_row_not_batch_mean(tiny_cnn):
    """grad-cam's batched ReST subtracts the batch-mean CE; lumos's per-row ReST gives per-sample HVPs that
    match single-sample runs (checked through the twin)."""
    x = torch.randn(4, 3, 12, 12)
    fast = layer_states(tiny_cnn, "features.2", x, ReST([0, 1, 2, 3]))
    ref = layer_states_reference(tiny_cnn, "features.2", x, ReST([0, 1, 2, 3]))
    assert_close("hvp", fast[0].hvp, ref[0].hvp, atol=1e-7, rtol=1e-4)


def _timm():
    return pytest.importorskip("timm")


def test_vit_token_layout_with_cls():
    timm = _timm()
    torch.manual_seed(0)
    vit = timm.models.vision_transformer.VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=2,
                                                          num_heads=2, num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32)
    for cls in (ShapleyCAM, ShapleyCAMH, GradCAM):
        cams = cls(vit, "blocks[-1].norm1")(x)
        assert cams.shape == (2, 32, 32) and float(cams.min()) >= 0 and float(cams.max()) <= 1
    fast = layer_states(vit, ["blocks[-1].norm1", "blocks.0"], x)
    assert fast[0].activations.shape == (2, 16, 4, 4)  # 17 tokens: CLS dropped, 4×4 grid
    ref = layer_states_reference(vit, ["blocks[-1].norm1", "blocks.0"], x)
    for f, r in zip(fast, ref):
        assert_close(f"{f.name} hvp", f.hvp, r.hvp, atol=1e-9, rtol=1e-4)
    # the weights meet the RESHAPED activations: the mean variant equals a manual computation
    s = fast[0]
    w = (s.grads - 0.5 * s.hvp).mean(dim=(2, 3))
    manual = torch.relu(torch.einsum("bk,bkhw->bhw", w, s.activations))
    manual = manual - manual.flatten(1).min(1).values[:, None, None]
    manual = manual / (manual.flatten(1).max(1).values[:, None, None] + 1e-7)
    up = torch.nn.functional.interpolate(manual[:, None], size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    up = up - up.flatten(1).min(1).values[:, None, None]  # the final min-max after the mean over layers
    up = up / (up.flatten(1).max(1).values[:, None, None] + 1e-7)
    assert_close("vit map", ShapleyCAM(vit, "blocks[-1].norm1")(x), up, atol=1e-5)


def test_swin_channels_last_layout():
    timm = _timm()
    torch.manual_seed(0)
    swin = timm.models.swin_transformer.SwinTransformer(img_size=32, patch_size=4, window_size=4, embed_dim=16,
                                                       depths=(1, 1), num_heads=(2, 2), num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32)
    # model.norm feeds global average pooling: ShapleyCAM == -H and GradCAM == HiResCAM (oracle 2) — only true
    # if the NHWC layout is read correctly.
    assert_close("swin norm", ShapleyCAM(swin, "norm")(x), ShapleyCAMH(swin, "norm")(x), atol=1e-5)
    assert_close("swin norm g", GradCAM(swin, "norm")(x), HiResCAM(swin, "norm")(x), atol=1e-5)
    layer = "layers[-1].blocks[-1].norm1"
    cams = ShapleyCAM(swin, layer)(x)
    assert cams.shape == (2, 32, 32)
    (f,), (r,) = layer_states(swin, layer, x), layer_states_reference(swin, layer, x)
    assert f.activations.shape == (2, 32, 4, 4)
    assert_close("swin hvp", f.hvp, r.hvp, atol=1e-9, rtol=1e-4)

"""BaseCAM: the batched gradient / HVP fast path against the per-sample twin, layers, errors, hooks."""

import pytest
import torch
from torch import nn

from lumos.core.errors import LumosError
from lumos.explain import GradCAM, ShapleyCAM
from lumos.explain.base import layer_states, resolve_layers
from lumos.explain.naive import layer_states_reference
from lumos.explain.targets import Logit, ReST, Softmax
from lumos.testing import assert_close


def _compare(fast, ref, atol=1e-6):
    for f, r in zip(fast, ref):
        for key in ("activations", "grads", "hvp"):
            assert_close(f"{f.name}.{key}", getattr(f, key), getattr(r, key), atol=atol, rtol=1e-4)


@pytest.mark.parametrize("target", [ReST, Softmax, Logit])
@pytest.mark.parametrize("hw", [(17, 23), (8, 8)])
def test_batched_hvp_matches_per_sample_twin(tiny_cnn, target, hw):
    x = torch.randn(3, 3, *hw)
    classes = [0, 4, 2]
    fast = layer_states(tiny_cnn, ["features.0", "features.3"], x, target(classes))
    ref = layer_states_reference(tiny_cnn, ["features.0", "features.3"], x, target(classes))
    _compare(fast, ref)


def test_multiple_nested_layers_on_resnet(resnet18):
    """Two nested target layers: the second HVP must not find a freed graph (grad-cam's retain_graph bug)."""
    x = torch.randn(2, 3, 32, 32)
    layers = ["layer3", "layer4[-1].conv2", "layer4"]
    # float32 convolutions over a batch and one sample at a time take different oneDNN kernels: ~5e-6 apart
    _compare(layer_states(resnet18, layers, x), layer_states_reference(resnet18, layers, x), atol=1e-5)


def test_hvp_closed_form_gap_linear_rest():
    """A → GAP → linear, ReST: HA = Gᵀ[−(diag p − ppᵀ)](z − b), (Gᵀv)_{k,h,w} = (Wᵀv)_k / (h·w)."""
    torch.manual_seed(1)
    k, h, w, c = 4, 5, 3, 6
    conv = nn.Conv2d(3, k, 3, padding=1)
    fc = nn.Linear(k, c)
    model = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc).eval()
    x = torch.randn(2, 3, h, w)
    (state,) = layer_states(model, "0", x, ReST([1, 5]))
    a = state.activations.double()
    W, b = fc.weight.double(), fc.bias.double()
    z = a.mean(dim=(2, 3)) @ W.T + b  # (B, C)
    p = torch.softmax(z, dim=1)
    hy = -(torch.diag_embed(p) - p[:, :, None] * p[:, None, :])  # (B, C, C)
    v = (hy @ (z - b)[:, :, None])[:, :, 0]  # (B, C)
    expected_hv = (v @ W)[:, :, None, None].expand(-1, -1, h, w) / (h * w)
    onehot = torch.nn.functional.one_hot(torch.tensor([1, 5]), c).double()
    expected_g = ((2 * onehot - p) @ W)[:, :, None, None].expand(-1, -1, h, w) / (h * w)
    assert_close("hvp", state.hvp, expected_hv, atol=1e-8, rtol=1e-5)
    assert_close("grads", state.grads, expected_g, atol=1e-8, rtol=1e-5)


def test_quadratic_game_shapley_efficiency():
    """φ_i = a_i (g_i − ½(HA)_i) is the exact Shapley value of the quadratic game: Σφ = v(N) − v(∅),
    and brute force over all coalitions agrees (4 players)."""
    import itertools
    import math

    torch.manual_seed(0)
    n = 4
    a = torch.randn(n, dtype=torch.float64)
    q = torch.randn(n, n, dtype=torch.float64)
    q = q + q.T
    lin = torch.randn(n, dtype=torch.float64)

    def u(z):
        return lin @ z + 0.5 * z @ q @ z

    g = lin + q @ a
    ha = q @ a
    phi = a * (g - 0.5 * ha)

    def v(s):  # second-order expansion of u around a, evaluated at a_S
        d = a - a * torch.tensor([1.0 if i in s else 0.0 for i in range(n)], dtype=torch.float64)
        return u(a) - g @ d + 0.5 * d @ q @ d

    brute = torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for r in range(n):
            for s in itertools.combinations(others, r):
                wgt = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
                brute[i] += wgt * (v(set(s) | {i}) - v(set(s)))
    assert_close("phi", phi, brute, atol=1e-12, rtol=0)
    assert_close("efficiency", phi.sum(), v(set(range(n))) - v(set()), atol=1e-12, rtol=0)


def test_layer_names_and_errors(resnet18):
    (name, mod), = resolve_layers(resnet18, "layer4[-1].conv2")
    assert mod is resnet18.layer4[1].conv2 and name == "layer4[-1].conv2"
    assert resolve_layers(resnet18, [resnet18.layer3])[0][0] == "layer3"
    with pytest.raises(LumosError, match="no layer named 'layer5'.*layer4"):
        GradCAM(resnet18, ["layer5"])
    with pytest.raises(LumosError, match="submodules of the explained model"):
        GradCAM(resnet18, [nn.Conv2d(1, 1, 1)])
    with pytest.raises(LumosError, match="no spatial axes"):
        GradCAM(resnet18, ["fc"])(torch.randn(1, 3, 32, 32))


def test_input_errors(resnet18):
    cam = GradCAM(resnet18, ["layer4"])
    with pytest.raises(LumosError, match="3 channels"):
        cam(torch.randn(2, 1, 32, 32))
    with pytest.raises(LumosError, match="4-D"):
        cam(torch.randn(3, 32, 32))
    with pytest.raises(LumosError, match="floating-point"):
        cam(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(LumosError, match=r"indices in \[0, 9\]"):
        cam(torch.randn(2, 3, 32, 32), targets=[1, 10])
    with pytest.raises(LumosError, match="one class index per sample"):
        cam(torch.randn(2, 3, 32, 32), targets=torch.tensor([1, 2, 3]))


def test_frozen_model_and_inplace_after_layer():
    """Parameters without grad still give gradients at the layer; an in-place ReLU after the layer does not
    alter the captured activations."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 3)).eval()
    model.requires_grad_(False)
    x = torch.randn(2, 3, 9, 9)
    (s,) = layer_states(model, "1", x)
    with torch.no_grad():
        pre = model[1](model[0](x))
    assert_close("bn output", s.activations, pre, atol=1e-6, rtol=0)
    assert (s.activations < 0).any()  # not the post-ReLU values
    (r,) = layer_states_reference(model, "1", x)
    assert_close("grads", s.grads, r.grads, atol=1e-7, rtol=1e-4)


def test_model_mode_restored_and_no_param_grads(resnet18):
    resnet18.train()
    try:
        ShapleyCAM(resnet18, "layer4")(torch.randn(2, 3, 32, 32))
        assert resnet18.training
        assert all(p.grad is None for p in resnet18.parameters())
    finally:
        resnet18.eval()


# --- aug_smooth / eigen_smooth ----------------------------------------------------------------------------
def test_aug_smooth_is_the_mean_of_six_flipped_back_views(tiny_cnn):
    """Twin: the six views explained one call each, with the class predicted on the original input."""
    x = torch.randn(3, 3, 12, 10)
    method = GradCAM(tiny_cnn, "features.2")
    got = method(x, aug_smooth=True)
    pred = tiny_cnn(x).argmax(1)
    assert torch.equal(method.classes_, pred)  # every view explains the original prediction
    views = []
    for flip in (False, True):
        for factor in (0.9, 1.0, 1.1):
            xv = (x.flip(-1) if flip else x) * factor
            cam = GradCAM(tiny_cnn, "features.2")(xv, targets=Logit(pred))
            views.append(cam.flip(-1) if flip else cam)
    assert_close("aug_smooth", got, torch.stack(views).mean(0), atol=1e-6)
    assert float((got - method(x)).abs().max()) > 1e-3  # the smoothing does something


def test_eigen_smooth_and_flags_are_checked(tiny_cnn):
    x = torch.randn(2, 3, 12, 10)
    cams = ShapleyCAM(tiny_cnn, "features.2")(x, eigen_smooth=True)
    assert cams.shape == (2, 12, 10) and float(cams.min()) >= 0 and float(cams.max()) <= 1 + 1e-6
    with pytest.raises(LumosError, match="eigen_smooth"):
        GradCAM(tiny_cnn, "features.2")(x, eigen_smooth="yes")
    with pytest.raises(LumosError, match="aug_smooth"):
        GradCAM(tiny_cnn, "features.2")(x, aug_smooth=1)


# --- outputs beyond (B, C) --------------------------------------------------------------------------------
class _Segmenter(nn.Module):
    """conv body → 1×1 head → per-pixel scores (B, 4, H, W); ``as_dict`` returns them as torchvision does."""

    def __init__(self, as_dict: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, stride=2, padding=1))
        self.head = nn.Conv2d(6, 4, 1)
        self.as_dict = as_dict

    def forward(self, x):
        y = nn.functional.interpolate(self.head(torch.relu(self.body(x))), size=x.shape[-2:], mode="bilinear")
        return {"out": y, "aux": y.detach()} if self.as_dict else y


def test_segmentation_outputs_tensor_and_dict():
    from lumos.explain import ScoreCAM
    from lumos.explain.targets import Segmentation

    torch.manual_seed(0)
    seg = _Segmenter().eval()
    as_dict = _Segmenter(as_dict=True).eval()
    as_dict.load_state_dict(seg.state_dict())
    x = torch.randn(2, 3, 12, 10)
    mask = seg(x).argmax(1) == 2  # (B, H, W): each sample's own pixels of class 2
    for method in (GradCAM, ShapleyCAM, ScoreCAM):
        ref = method(seg, "body.2")(x, targets=Segmentation(2, mask))
        got = method(as_dict, "body.2")(x, targets=Segmentation(2, mask, key="out"))
        assert_close(method.__name__, got, ref, atol=1e-6)
        per_sample = method(seg, "body.2")(x, targets=[Segmentation(2, mask[0]), Segmentation(2, mask[1])])
        assert_close(f"{method.__name__} per sample", per_sample, ref, atol=1e-6)
    # the utility is Σ over the mask of class 2's scores: a hand check on the model output
    y = seg(x)
    assert_close("utility", Segmentation(2, mask)(y), (y[:, 2] * mask).sum((1, 2)), atol=1e-6)


def test_outputs_beyond_logits_need_a_target_that_reduces_them():
    seg, as_dict = _Segmenter().eval(), _Segmenter(as_dict=True).eval()
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(LumosError, match="Segmentation"):
        GradCAM(seg, "body.2")(x)
    with pytest.raises(LumosError, match=r"key.*one of \['out', 'aux'\]"):
        GradCAM(as_dict, "body.2")(x)
    from lumos.explain.targets import Segmentation

    with pytest.raises(LumosError, match="name the class"):
        Segmentation(None)
    with pytest.raises(LumosError, match="mask"):
        GradCAM(seg, "body.2")(x, targets=Segmentation(1, torch.ones(5, 5)))

    class Pooled(nn.Module):  # one number for the whole batch: no per-sample utility exists
        def __init__(self) -> None:
            super().__init__()
            self.seg = seg

        def forward(self, x):
            return self.seg(x).sum()

    with pytest.raises(LumosError, match="one output row per input"):
        GradCAM(Pooled(), "seg.body.2")(x)


def test_aug_smooth_explains_the_masked_pixels_in_every_view():
    """A flipped view of aug_smooth flips the segmentation mask with the image: a per-pixel model explaining the
    left columns puts (almost) nothing on the right, smoothed or not."""
    from lumos.explain import HiResCAM
    from lumos.explain.targets import Segmentation

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 3, 1)).eval()
    x = torch.randn(1, 3, 8, 16)
    mask = torch.zeros(8, 16)
    mask[:, :4] = 1
    for smooth in (False, True):
        cam = HiResCAM(model, "0")(x, targets=Segmentation(1, mask), aug_smooth=smooth)[0]
        assert float(cam[:, 8:].sum()) < 0.05 * float(cam[:, :4].sum()), (smooth, cam.sum(0))

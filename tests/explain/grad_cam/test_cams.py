"""grad-cam's own README usage, run twice: with ``pytorch_grad_cam`` and with only the import prefix swapped to
``lumos.explain.grad_cam``. The maps, overlays and outputs must agree."""

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("pytorch_grad_cam")

PREFIXES = ("pytorch_grad_cam", "lumos.explain.grad_cam")


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2, padding=1),
                                      nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.features(x)).mean(dim=(2, 3)))


def run(snippet: str, prefix: str, **names):
    """exec a grad-cam snippet with ``{pkg}`` as the import prefix; returns its namespace."""
    ns = dict(names, np=np, torch=torch, nn=nn)
    exec(snippet.replace("{pkg}", prefix), ns)  # noqa: S102 - the snippet is this file's text
    return ns


def both(snippet: str, *keys: str, **names):
    ref, ours = (run(snippet, p, **names) for p in PREFIXES)
    return [(ref[k], ours[k]) for k in keys]


def close(name, ref, ours, atol=1e-5):
    assert isinstance(ours, np.ndarray) and ours.dtype == ref.dtype and ours.shape == ref.shape, name
    diff = float(np.abs(ours.astype(np.float64) - ref.astype(np.float64)).max())
    assert diff <= atol, f"{name}: max abs diff {diff:.3g}"


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return TinyCNN().eval()


README = """
from {pkg} import GradCAM
from {pkg}.utils.model_targets import ClassifierOutputTarget
from {pkg}.utils.image import show_cam_on_image

target_layers = [model.features[-1]]
targets = [ClassifierOutputTarget(3)]
with GradCAM(model=model, target_layers=target_layers) as cam:
    grayscale_cam = cam(input_tensor=input_tensor, targets=targets)
    grayscale_cam = grayscale_cam[0, :]
    visualization = show_cam_on_image(rgb_img, grayscale_cam, use_rgb=True)
    model_outputs = cam.outputs
"""


def test_readme_snippet(cnn):
    rgb = np.random.default_rng(0).random((20, 16, 3)).astype(np.float32)
    x = torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None] * 2 - 1
    (cam, vis, out) = both(README, "grayscale_cam", "visualization", "model_outputs", model=cnn, input_tensor=x,
                           rgb_img=rgb)
    close("grayscale_cam", *cam)
    assert float(cam[1].max()) == pytest.approx(1.0, abs=1e-6)
    close("visualization", *vis, atol=1)  # uint8 overlay: at most one level where 255·cam truncates differently
    assert torch.allclose(out[0], out[1])


METHODS = """
from {pkg} import GradCAM, HiResCAM, GradCAMElementWise, GradCAMPlusPlus, XGradCAM, LayerCAM, ShapleyCAM, ScoreCAM

cams = {}
for method in (GradCAM, HiResCAM, GradCAMElementWise, GradCAMPlusPlus, XGradCAM, LayerCAM, ShapleyCAM, ScoreCAM):
    with method(model=model, target_layers=[model.features[-1]]) as cam:
        cam.batch_size = 4
        for aug in (False, True):
            for eigen in (False, True):
                if method is ScoreCAM and aug:
                    continue  # 6 views × K masked forwards: covered by the other methods
                if method is GradCAMPlusPlus and eigen:
                    continue  # see test_eigen_sign_of_zero_weight_channels
                cams[method.__name__, aug, eigen] = cam(input_tensor=input_tensor, targets=None,
                                                        aug_smooth=aug, eigen_smooth=eigen)
"""


def test_every_method_with_aug_and_eigen_smooth_and_default_targets(cnn):
    """targets=None is grad-cam's predicted raw logit for every method (ShapleyCAM included); aug_smooth re-predicts
    on each view as grad-cam does."""
    torch.manual_seed(1)
    x = torch.randn(3, 3, 20, 16)
    ((ref, ours),) = both(METHODS, "cams", model=cnn, input_tensor=x)
    assert ref.keys() == ours.keys() and len(ours) == 28
    for key in ref:
        close(str(key), ref[key], ours[key])
    assert any(float(np.abs(ours[k, True, False] - ours[k, False, False]).max()) > 1e-2 for k in ("GradCAM",))


VIT = """
from {pkg} import GradCAM

def reshape_transform(tensor, height=4, width=4):
    result = tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2))
    result = result.transpose(2, 3).transpose(1, 2)
    return result

target_layers = [model.blocks[-1].norm1]
cam = GradCAM(model=model, target_layers=target_layers, reshape_transform=reshape_transform)
grayscale_cam = cam(input_tensor=input_tensor, targets=None, eigen_smooth=True, aug_smooth=True)
plain = cam(input_tensor=input_tensor, targets=None)
"""


@pytest.fixture
def vit():
    from lumos.vision.models import SmallViT, VisionConfig

    torch.manual_seed(0)
    return SmallViT(VisionConfig(kind="vit", image_size=16, patch_size=4, width=16, heads=2, depth=2)).eval()


def test_vit_with_reshape_transform(vit):
    x = torch.randn(2, 3, 16, 16)
    for key, (ref, ours) in zip(("eigen+aug", "plain"), both(VIT, "grayscale_cam", "plain", model=vit, input_tensor=x)):
        close(key, ref, ours)


def test_shapleycam_on_a_vit_where_grad_cam_fails(vit):
    """grad-cam 1.5.7's ShapleyCAM cannot run this ViT (no double backward through fused attention; with the math
    kernel its base reshapes grads but not activations). The compat class runs and equals lumos's own ShapleyCAM
    with the same targets, whose derivatives the naive twin checks (tests/explain/test_shapleycam.py)."""
    from lumos.explain import ShapleyCAM as Core
    from lumos.explain.grad_cam import ShapleyCAM
    from lumos.explain.grad_cam.utils.model_targets import ClassifierOutputReST
    from lumos.explain.grad_cam.utils.reshape_transforms import vit_reshape_transform
    from lumos.explain.targets import Logit, ReST

    x = torch.randn(2, 3, 16, 16)
    layers = [vit.blocks[-1].norm1]
    reshape = lambda t: vit_reshape_transform(t, 4, 4)
    with ShapleyCAM(model=vit, target_layers=layers, reshape_transform=reshape) as cam:
        rest = cam(input_tensor=x, targets=[ClassifierOutputReST(1), ClassifierOutputReST(2)])
        default = cam(input_tensor=x)
    core = Core(vit, layers)  # the token layout found from the model (CLS token, 4×4 patches of a 16×16 input)
    close("ReST", core(x, targets=ReST([1, 2])).numpy(), rest)
    close("targets=None is the raw logit", core(x, targets=Logit()).numpy(), default)
    assert float(np.abs(core(x).numpy() - default).max()) > 1e-3  # lumos's own default (ReST) differs


SEGMENTATION = """
from {pkg} import GradCAM
from {pkg}.utils.model_targets import SemanticSegmentationTarget

class SegmentationModelOutputWrapper(torch.nn.Module):
    def __init__(self, model):
        super(SegmentationModelOutputWrapper, self).__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]

model = SegmentationModelOutputWrapper(net)
output = model(input_tensor)
normalized_masks = torch.nn.functional.softmax(output, dim=1).cpu()
category = 2
mask = normalized_masks[0, :, :, :].argmax(axis=0).detach().cpu().numpy()
mask_float = np.float32(mask == category)
target_layers = [model.model.body[-1]]
targets = [SemanticSegmentationTarget(category, mask_float)]
with GradCAM(model=model, target_layers=target_layers) as cam:
    grayscale_cam = cam(input_tensor=input_tensor, targets=targets)[0, :]
"""


class TinySegmenter(nn.Module):
    """conv body at half resolution → 1×1 class head → upsampled scores, returned as torchvision does: {"out": ...}."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                                  nn.ReLU())
        self.head = nn.Conv2d(8, classes, 1)

    def forward(self, x):
        y = self.head(self.body(x))
        return {"out": nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)}


def test_segmentation_tutorial():
    torch.manual_seed(3)
    net = TinySegmenter().eval()
    x = torch.randn(1, 3, 16, 12)
    ((ref, ours),) = both(SEGMENTATION, "grayscale_cam", net=net, input_tensor=x)
    assert ours.shape == (16, 12) and float(ours.max()) > 0.5
    close("segmentation", ref, ours)


def test_eigen_sign_of_zero_weight_channels(cnn):
    """GradCAM++ gives some channels weight exactly 0; when such a channel comes first, the principal component's
    sign is decided by rounding noise in grad-cam itself. lumos follows the same LAPACK path, so the maps agree up to
    that sign: either equal or (before ReLU) mirrored — never some other map."""
    from pytorch_grad_cam import GradCAMPlusPlus as Ref

    from lumos.explain.grad_cam import GradCAMPlusPlus

    torch.manual_seed(1)
    x = torch.randn(3, 3, 20, 16)
    ref = Ref(model=cnn, target_layers=[cnn.features[-1]])(input_tensor=x, targets=None, eigen_smooth=True)
    ours = GradCAMPlusPlus(model=cnn, target_layers=[cnn.features[-1]])(input_tensor=x, targets=None,
                                                                          eigen_smooth=True)
    for b in range(3):
        assert np.abs(ref[b] - ours[b]).max() < 1e-5 or np.abs(ref[b] - ours[b]).max() > 0.1


def test_only_implemented_methods_are_exported():
    import lumos.explain.grad_cam as lgc

    assert not hasattr(lgc, "EigenCAM") and not hasattr(lgc, "AblationCAM")
    with pytest.raises(ImportError):
        exec("from lumos.explain.grad_cam import FullGrad")  # noqa: S102
    assert all(hasattr(lgc, n) for n in lgc.__all__)


def test_stricter_than_grad_cam_on_too_few_targets(cnn):
    """grad-cam explains only the first len(targets) samples and leaves the rest uniform; lumos refuses."""
    from lumos.core.errors import LumosError
    from lumos.explain.grad_cam import GradCAM
    from lumos.explain.grad_cam.utils.model_targets import ClassifierOutputTarget

    with pytest.raises(LumosError, match="one target per sample"):
        GradCAM(model=cnn, target_layers=[cnn.features[-1]])(input_tensor=torch.randn(2, 3, 8, 8),
                                                             targets=[ClassifierOutputTarget(1)])

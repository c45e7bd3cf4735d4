"""One contract suite over every CAM method: shape and range, device, input not mutated, determinism,
per-sample targets, hooks released, errors."""

import pytest
import torch

from lumos.explain import METHODS, get_method
from lumos.explain.targets import Softmax

ALL = sorted(METHODS)


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


@pytest.mark.parametrize("name", ALL)
def test_method_contract(tiny_cnn, name):
    cls = get_method(name)
    x = torch.randn(3, 3, 13, 10)
    x_before = x.clone()
    with cls(tiny_cnn, ["features.2"]) as method:
        a = method(x)
        b = method(x)
        assert _hooks(tiny_cnn) == 0  # hooks never outlive a call
        c = method(x, targets=Softmax([0, 1, 4]))
        assert method.outputs_.shape == (3, 5)
    assert method.outputs_ is None  # released on exit
    assert torch.equal(x, x_before)  # input not mutated
    assert a.shape == (3, 13, 10) and a.dtype == torch.float32 and a.device == x.device
    assert float(a.min()) >= 0 and float(a.max()) <= 1 + 1e-6
    assert torch.equal(a, b)  # deterministic
    assert c.shape == a.shape
    assert all(p.grad is None for p in tiny_cnn.parameters())


@pytest.mark.parametrize("name", ALL)
def test_method_contract_multi_layer_and_grad_input(tiny_cnn, name):
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    cams = get_method(name)(tiny_cnn, ["features.0", "features.3"])(x, targets=[2, 3])
    assert cams.shape == (2, 9, 9) and not cams.requires_grad
    assert x.grad is None
    assert _hooks(tiny_cnn) == 0


def test_hooks_released_after_an_error(tiny_cnn):
    method = get_method("shapleycam")(tiny_cnn, "features.2")
    with pytest.raises(ValueError):
        method(torch.randn(2, 3, 9, 9), targets=[0, 99])
    assert _hooks(tiny_cnn) == 0


def test_get_method_names():
    assert get_method("GradCAM++") is METHODS["gradcam++"]
    assert get_method("shapleycam_hires") is METHODS["shapleycam-h"]
    with pytest.raises(ValueError, match="one of the registered CAM methods: gradcam, "):
        get_method("eigencam")


def test_public_api():
    import lumos.explain as ex
    import lumos.explain.metrics as metrics
    import lumos.explain.targets as targets

    for name in ("GradCAM", "HiResCAM", "GradCAMElementWise", "ShapleyCAM", "ShapleyCAMH", "ShapleyCAME",
                 "GradCAMPlusPlus", "XGradCAM", "LayerCAM", "ScoreCAM"):
        assert name in ex.__all__ and hasattr(ex, name)
    assert {"Logit", "Softmax", "ReST"} <= set(targets.__all__)
    assert {"faithfulness", "adcc", "deletion_auc", "insertion_auc", "energy_pointing_game"} <= set(metrics.__all__)
    for mod in (ex, metrics, targets):
        assert all(hasattr(mod, n) for n in mod.__all__)

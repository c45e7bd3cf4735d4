import pytest
import torch

from lumos.core.errors import LumosError
from lumos.explain import GradCAM, HiResCAM, ShapleyCAM, ShapleyCAMH
from lumos.testing import assert_close
from lumos.vision.models import TARGET_LAYERS, VisionConfig, build_builtin


@pytest.mark.parametrize("kind", ["cnn", "vit"])
def test_builtin_models_and_their_target_layers(kind):
    torch.manual_seed(0)
    m = build_builtin(VisionConfig(kind=kind, width=8, heads=2)).eval()
    x = torch.randn(2, 3, 32, 32)
    assert m(x).shape == (2, 6)
    pre = TARGET_LAYERS[kind]["before_pool"]
    # the layer before pooling feeds GAP + linear: the paper's equivalences hold (CLS token dropped for the ViT)
    assert_close("shapley", ShapleyCAM(m, pre)(x), ShapleyCAMH(m, pre)(x), atol=1e-5)
    assert_close("grad", GradCAM(m, pre)(x), HiResCAM(m, pre)(x), atol=1e-5)
    assert ShapleyCAM(m, TARGET_LAYERS[kind]["last_conv"])(x).shape == (2, 32, 32)


def test_config_errors():
    with pytest.raises(LumosError, match="kind"):
        VisionConfig(kind="mlp")
    with pytest.raises(LumosError, match="divisor"):
        VisionConfig(kind="vit", image_size=30, patch_size=4)

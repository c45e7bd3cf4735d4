import numpy as np
import pytest

pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection as ref  # noqa: E402

from lumos.explain.grad_cam.utils.svd_on_activations import get_2d_projection  # noqa: E402


def test_projection_equals_grad_cams_including_dead_channels():
    rng = np.random.default_rng(0)
    for i in range(20):
        a = np.maximum(rng.normal(size=(2, 6, 5, 4)), 0).astype(np.float32)
        if i % 2:
            a[:, 2:4] = 0  # dead channels (post-ReLU layers have them)
        a[0, 0, 0, 0] = np.nan if i == 3 else a[0, 0, 0, 0]  # grad-cam sets NaN to 0 first
        got = get_2d_projection(a)
        assert got.dtype == np.float32 and got.shape == (2, 5, 4)
        assert np.abs(got - ref(a)).max() < 1e-5

"""The one combine helper: channel / element / element-ReLU weighting, sum or eigen projection, 2-D and 3-D."""

import numpy as np
import pytest
import torch

from lumos.core.errors import LumosError
from lumos.explain.combine import combine, principal_projection, spatial_mean, spatial_sum
from lumos.testing import assert_close


@pytest.mark.parametrize("spatial", [(4, 5), (3, 4, 5)])  # 2-D maps and 3-D volumes, one code path
def test_combine_kinds_against_explicit_loops(spatial):
    torch.manual_seed(0)
    b, k = 2, 3
    a = torch.randn(b, k, *spatial, dtype=torch.float64)
    wc = torch.randn(b, k, dtype=torch.float64)
    we = torch.randn(b, k, *spatial, dtype=torch.float64)
    chan = torch.zeros(b, *spatial, dtype=torch.float64)
    elem = torch.zeros_like(chan)
    relu = torch.zeros_like(chan)
    for i in range(b):
        for j in range(k):
            chan[i] += wc[i, j] * a[i, j]
            elem[i] += we[i, j] * a[i, j]
            relu[i] += torch.clamp(we[i, j] * a[i, j], min=0)
    assert_close("channel", combine(wc, a, "channel"), chan, atol=1e-12)
    assert_close("element", combine(we, a, "element"), elem, atol=1e-12)
    assert_close("element_relu", combine(we, a, "element_relu"), relu, atol=1e-12)
    assert_close("mean", spatial_mean(a), a.reshape(b, k, -1).mean(-1), atol=1e-12)
    assert_close("sum", spatial_sum(a, keepdim=True).reshape(b, k), a.reshape(b, k, -1).sum(-1), atol=1e-12)
    assert combine(wc, a, "channel", eigen_smooth=True).shape == (b, *spatial)


def test_eigen_projection_is_grad_cams_and_the_first_principal_component():
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    torch.manual_seed(1)
    a = torch.randn(3, 5, 6, 4)
    w = torch.randn(3, 5)
    weighted = (w[:, :, None, None] * a).numpy()
    got = combine(w, a, "channel", eigen_smooth=True)
    assert np.abs(got.numpy() - get_2d_projection(weighted)).max() < 1e-5
    for i in range(3):  # up to sign: the centred data's direction of largest variance
        x = torch.from_numpy(weighted[i].reshape(5, -1).T).double()
        x = x - x.mean(0)
        v = torch.linalg.eigh(x.T @ x).eigenvectors[:, -1]
        proj = (x @ v).reshape(6, 4)
        assert min(float((proj - got[i]).abs().max()), float((proj + got[i]).abs().max())) < 1e-4
    assert principal_projection(a.double()).dtype == torch.float64


def test_combine_errors():
    a = torch.randn(2, 3, 4, 4)
    with pytest.raises(LumosError, match="kind"):
        combine(torch.randn(2, 3), a, "mean")
    with pytest.raises(LumosError, match=r"shape \(2, 3\) for kind 'channel'"):
        combine(torch.randn(2, 3, 4, 4), a, "channel")
    with pytest.raises(LumosError, match="activations"):
        spatial_mean(torch.randn(2, 3))

import numpy as np
import pytest
import torch

from lumos.explain.naive import bilinear_reference, postprocess_reference
from lumos.explain.postprocess import minmax, postprocess
from lumos.testing import assert_close


@pytest.mark.parametrize("src,dst", [((2, 2), (64, 64)), ((7, 5), (31, 17)), ((1, 3), (4, 9)), ((9, 9), (4, 5)),
                                     ((6, 6), (6, 6))])
def test_torch_postprocess_matches_numpy_twin(src, dst):
    torch.manual_seed(0)
    raw = [torch.randn(3, *src), torch.randn(3, *src) * 3]
    ours = postprocess(raw, dst)
    ref = postprocess_reference([r.numpy() for r in raw], dst)
    assert_close("postprocess", ours, torch.from_numpy(ref), atol=1e-5)
    assert float(ours.min()) >= 0 and float(ours.max()) <= 1


@pytest.mark.parametrize("src,dst", [((2, 2), (64, 64)), ((7, 5), (31, 17)), ((9, 9), (4, 5))])
def test_bilinear_twin_matches_cv2(src, dst):
    cv2 = pytest.importorskip("cv2")
    img = np.random.default_rng(0).normal(size=src).astype(np.float32)
    ref = cv2.resize(img, (dst[1], dst[0]))
    assert_close("cv2", torch.from_numpy(bilinear_reference(img, dst)), torch.from_numpy(ref.astype(np.float64)),
                 atol=1e-5)


def test_minmax_hand_values():
    cam = torch.tensor([[[1.0, 3.0], [2.0, 5.0]]])
    assert_close("minmax", minmax(cam), torch.tensor([[[0.0, 0.5], [0.25, 1.0]]]), atol=1e-6)
    assert torch.equal(minmax(torch.zeros(1, 2, 2)), torch.zeros(1, 2, 2))  # constant map → 0, no NaN

import pytest
import torch

pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils import reshape_transforms as ref  # noqa: E402

from lumos.explain.grad_cam.utils import reshape_transforms as ours  # noqa: E402


def test_reshape_transforms_equal_grad_cams():
    t = torch.randn(2, 1 + 12, 5)
    assert torch.equal(ours.vit_reshape_transform(t, 3, 4), ref.vit_reshape_transform(t, 3, 4))
    s = torch.randn(2, 12, 5)
    assert torch.equal(ours.swinT_reshape_transform(s, 4, 3), ref.swinT_reshape_transform(s, 4, 3))

import pytest
import torch
from torch import nn

from lumos.core.errors import LumosError
from lumos.explain.reshape import Layout, infer_layout, to_map


def test_layouts():
    m = nn.Module()
    conv = nn.Conv2d(1, 1, 1)
    t = torch.arange(2 * 5 * 3 * 4.0).view(2, 5, 3, 4)
    assert infer_layout(m, conv, t, "x").kind == "nchw"
    ln = nn.LayerNorm(4)
    assert infer_layout(m, ln, t, "x").kind == "nhwc"
    assert to_map(t, Layout("nhwc")).shape == (2, 4, 5, 3)
    tok = torch.randn(2, 1 + 9, 6)
    lay = infer_layout(m, ln, tok, "x")
    assert (lay.prefix, lay.grid) == (1, (3, 3))
    mapped = to_map(tok, lay)
    assert torch.equal(mapped[:, :, 1, 2], tok[:, 1 + 1 * 3 + 2])  # row-major patches, CLS dropped
    assert infer_layout(m, ln, torch.randn(2, 16, 6), "x").prefix == 0
    assert infer_layout(m, ln, tok, "x", "tokens:2:2:4").grid == (2, 4)


def test_layout_errors():
    m = nn.Module()
    with pytest.raises(LumosError, match="square grid"):
        infer_layout(m, nn.Identity(), torch.randn(1, 7, 3), "blk")
    with pytest.raises(LumosError, match="no spatial axes"):
        infer_layout(m, nn.Identity(), torch.randn(1, 7), "fc")
    with pytest.raises(LumosError, match="reshape"):
        infer_layout(m, nn.Identity(), torch.randn(1, 7, 3), "blk", "weird")

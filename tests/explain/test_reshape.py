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


class _ViT(nn.Module):
    """CLS token + a patchify conv: a 24×32 input gives 6×8 = 48 patches, 49 tokens (a square number)."""

    def __init__(self, patch_conv: bool = True, dim: int = 8, patch: int = 4) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        if patch_conv:
            self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        else:  # a linear patch embedding: the model declares no patch size
            self.unfold, self.proj = nn.Unfold(patch, stride=patch), nn.Linear(3 * patch * patch, dim)
        self.blk = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2) if hasattr(self, "patch") else self.proj(self.unfold(x).transpose(1, 2))
        t = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), t], dim=1)
        return self.head(torch.relu(self.blk(t))[:, 1:].mean(1))


def test_cls_plus_6x8_patches_is_never_read_as_a_7x7_grid():
    tok = torch.randn(2, 49, 8)
    vit = _ViT()
    lay = infer_layout(vit, vit.blk, tok, "blk", input_size=(24, 32))
    assert (lay.prefix, lay.grid) == (1, (6, 8))  # from the CLS parameter, the patch conv and the input size
    assert torch.equal(to_map(tok, lay)[:, :, 2, 5], tok[:, 1 + 2 * 8 + 5])
    with pytest.raises(LumosError, match=r"declares 1 prefix token.*do not form a square grid"):
        infer_layout(_ViT(patch_conv=False), vit.blk, tok, "blk", input_size=(24, 32))
    with pytest.raises(LumosError, match="not the model's 1 prefix token"):
        infer_layout(vit, vit.blk, tok, "blk", input_size=(28, 28))  # 7×7 patches + CLS would be 50 tokens


def test_cam_on_the_vit_uses_its_real_grid():
    from lumos.explain import GradCAM
    from lumos.explain.naive import layer_states_reference

    torch.manual_seed(0)
    vit = _ViT().eval()
    x = torch.randn(2, 3, 24, 32)
    cam = GradCAM(vit, "blk")
    assert cam(x).shape == (2, 24, 32) and cam.layouts_[0].grid == (6, 8)
    (ref,) = layer_states_reference(vit, "blk", x, hvp=False, default_target=None)
    assert ref.activations.shape == (2, 8, 6, 8)
    with pytest.raises(LumosError, match="do not form a square grid"):
        GradCAM(_ViT(patch_conv=False).eval(), "blk")(x)


@pytest.mark.parametrize("spec,msg", [
    ("tokens:1:7:7", r"needs 1 \+ 7·7 = 50 tokens, but target layer 'blk' outputs 49"),
    ("tokens:0:6:8", r"needs 0 \+ 6·8 = 48 tokens"),
    ("tokens:-1:7:7", "PREFIX ≥ 0"),
    ("tokens:1:0:48", "PREFIX ≥ 0"),
    ("nchw", "'tokens:PREFIX:H:W' for a token output"),
])
def test_wrong_reshape_spec_is_a_clear_error(spec, msg):
    with pytest.raises(LumosError, match=msg) as exc:
        infer_layout(nn.Module(), nn.Identity(), torch.randn(2, 49, 8), "blk", spec)
    assert "\n" not in str(exc.value)


def test_wrong_reshape_spec_through_a_cam_is_one_line():
    from lumos.explain import GradCAM

    vit = _ViT().eval()
    with pytest.raises(LumosError, match="needs 1 \\+ 7·7 = 50 tokens"):
        GradCAM(vit, "blk", reshape="tokens:1:7:7")(torch.randn(1, 3, 24, 32))
    assert GradCAM(vit, "blk", reshape="tokens:1:6:8")(torch.randn(1, 3, 24, 32)).shape == (1, 24, 32)
    with pytest.raises(LumosError, match="'nchw' or 'nhwc' for a 4-D layer output"):
        GradCAM(vit, "patch", reshape="tokens:1:6:8")(torch.randn(1, 3, 24, 32))

"""The built-in small classifiers trained by lumos on the synthetic shapes: a CNN and a ViT.

Both end in global average pooling + a linear head, so each has the paper's two target-layer settings:

============  ====================================  ==========================================
model         (i) layer before pooling              (ii) last conv / first norm of last block
============  ====================================  ==========================================
SmallCNN      ``block4`` (post-ReLU block output)    ``block4.conv``
SmallViT      ``norm`` (final norm, CLS dropped)     ``blocks[-1].norm1``
============  ====================================  ==========================================

SmallViT keeps a CLS token (so the token reshape must drop it) but pools the patch tokens, like Swin.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from lumos.core.validation import POSITIVE_INT, Options, Problems, constraint

__all__ = ["SmallCNN", "SmallViT", "VisionConfig", "build_builtin", "TARGET_LAYERS"]

#: The paper's two target-layer settings per built-in model.
TARGET_LAYERS = {
    "cnn": {"before_pool": "block4", "last_conv": "block4.conv"},
    "vit": {"before_pool": "norm", "last_conv": "blocks[-1].norm1"},
}


@dataclass
class VisionConfig:
    """Architecture of a built-in model (stored next to its weights)."""

    kind: str = field(default="cnn", metadata=constraint(Options(str, tuple(TARGET_LAYERS))))
    num_classes: int = field(default=6, metadata=constraint(POSITIVE_INT))
    in_channels: int = field(default=3, metadata=constraint(POSITIVE_INT))
    image_size: int = field(default=32, metadata=constraint(POSITIVE_INT))
    width: int = field(default=32, metadata=constraint(POSITIVE_INT))
    depth: int = field(default=2, metadata=constraint(POSITIVE_INT))
    patch_size: int = field(default=4, metadata=constraint(POSITIVE_INT))
    heads: int = field(default=4, metadata=constraint(POSITIVE_INT))

    def __post_init__(self) -> None:
        p = Problems("VisionConfig")
        p.fields(self)
        if self.kind == "vit" and p.ok("image_size", "patch_size", "width", "heads"):
            if self.image_size % self.patch_size:
                p.param("patch_size", f"a divisor of image_size ({self.image_size})", self.patch_size)
            if self.width % self.heads:
                p.param("heads", f"a divisor of width ({self.width})", self.heads)
        p.raise_if_any()

    def to_dict(self) -> dict:
        return asdict(self)


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU blocks (strides 1, 2, 2, 1) → GAP → linear. (B, C, S, S) → logits (B, classes)."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        w = cfg.width
        self.block1 = _ConvBlock(cfg.in_channels, w // 2, 1)
        self.block2 = _ConvBlock(w // 2, w, 2)
        self.block3 = _ConvBlock(w, 2 * w, 2)
        self.block4 = _ConvBlock(2 * w, 2 * w, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * w, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block4(self.block3(self.block2(self.block1(x))))
        return self.fc(self.pool(x).flatten(1))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class SmallViT(nn.Module):
    """Patch embedding + CLS token + pre-norm blocks → final norm → mean of PATCH tokens → linear.

    (B, C, S, S) → logits (B, classes); tokens are (B, 1 + (S/p)², width) with the CLS token first.
    """

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        d = cfg.width
        self.num_prefix_tokens = 1
        self.grid = cfg.image_size // cfg.patch_size
        self.patch = nn.Conv2d(cfg.in_channels, d, cfg.patch_size, stride=cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, 1 + self.grid**2, d) * 0.02)
        self.blocks = nn.ModuleList([_Block(d, cfg.heads) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)  # (B, N, d)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1) + self.pos
        for blk in self.blocks:
            t = blk(t)
        t = self.norm(t)
        return self.head(t[:, 1:].mean(dim=1))


def build_builtin(cfg: VisionConfig) -> nn.Module:
    """A fresh (randomly initialised) built-in model for ``cfg``."""
    return SmallCNN(cfg) if cfg.kind == "cnn" else SmallViT(cfg)

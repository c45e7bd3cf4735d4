"""grad-cam's reshape transforms for transformers: token outputs (B, N, K) → maps (B, K, h, w)."""

from __future__ import annotations

import torch

from lumos.explain.reshape import tokens

__all__ = ["vit_reshape_transform", "swinT_reshape_transform"]


def vit_reshape_transform(tensor: torch.Tensor, height: int = 14, width: int = 14) -> torch.Tensor:
    """ViT tokens (B, 1 + height·width, K) → (B, K, height, width), the CLS token dropped."""
    return tokens(tensor, 1, (height, width))


def swinT_reshape_transform(tensor: torch.Tensor, height: int = 7, width: int = 7) -> torch.Tensor:
    """Swin tokens (B, height·width, K) → (B, K, height, width)."""
    return tokens(tensor, 0, (height, width))

"""Score-CAM (Wang et al. 2020), gradient-free: each channel's upsampled, min-max-scaled map masks the input,
and the channel weight is the softmax (over channels) of the utility of the masked input.

Follows grad-cam 1.5.7: bilinear upsampling with ``align_corners=True`` (``nn.UpsamplingBilinear2d``),
per-channel min-max with eps 1e-8, weights = softmax_k(u(x ⊙ m_k)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.validation import check_positive_int
from lumos.explain.base import ChannelCAM, LayerSpec, LayerState
from lumos.explain.reshape import ReshapeSpec
from lumos.explain.targets import Target

__all__ = ["ScoreCAM"]


class ScoreCAM(ChannelCAM):
    """Score-CAM; ``batch_size`` masked copies per forward pass (cost: K forwards per image and layer)."""

    uses_gradients = False
    name = "scorecam"

    def __init__(self, model: nn.Module, target_layers: LayerSpec, *, reshape: ReshapeSpec = None,
                 batch_size: int = 64) -> None:
        check_positive_int(batch_size, "batch_size", owner="ScoreCAM")
        self.batch_size = batch_size
        super().__init__(model, target_layers, reshape=reshape)

    def weights(self, *, state: LayerState, x: torch.Tensor, target: Target) -> torch.Tensor:
        a = state.activations  # (B, K, h, w)
        up = F.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=True)
        flat = up.flatten(2)
        lo, hi = flat.min(dim=-1).values, flat.max(dim=-1).values
        masks = (up - lo[..., None, None]) / (hi - lo + 1e-8)[..., None, None]  # (B, K, H, W)
        scores = torch.empty(a.shape[:2], dtype=x.dtype, device=x.device)
        for b in range(a.shape[0]):
            utility = target.row_target(b)
            for k0 in range(0, a.shape[1], self.batch_size):
                chunk = x[b][None] * masks[b, k0:k0 + self.batch_size, None]  # (k, C, H, W)
                scores[b, k0:k0 + chunk.shape[0]] = utility(self.model(chunk))
        return torch.softmax(scores, dim=-1)

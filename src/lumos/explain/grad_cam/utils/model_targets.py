"""grad-cam's target classes on lumos's targets: each is callable on one sample's output (grad-cam style) and
on a batch, and ``category`` is kept under grad-cam's attribute name."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lumos.explain.targets import Logit, ReST, Segmentation, Softmax

__all__ = ["ClassifierOutputTarget", "ClassifierOutputSoftmaxTarget", "ClassifierOutputReST",
           "SemanticSegmentationTarget", "BinaryClassifierOutputTarget"]


class ClassifierOutputTarget(Logit):
    """The raw logit of ``category``: output (C,) → y[category]; (B, C) → y[:, category]."""

    def __init__(self, category: int) -> None:
        super().__init__(category)
        self.category = category


class ClassifierOutputSoftmaxTarget(Softmax):
    """The softmax probability of ``category``."""

    def __init__(self, category: int) -> None:
        super().__init__(category)
        self.category = category


class ClassifierOutputReST(ReST):
    """ReST, y_c − CE(y, c) (arXiv 2501.06261), per sample."""

    def __init__(self, category: int) -> None:
        super().__init__(category)
        self.category = category


class SemanticSegmentationTarget(Segmentation):
    """Σ over ``mask`` of ``category``'s per-pixel scores; one sample's output is (C, H, W).

    ``mask``: an (H, W) numpy array (or tensor) of pixel weights, as in grad-cam.
    """

    def __init__(self, category: int, mask: np.ndarray | torch.Tensor) -> None:
        super().__init__(category, torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask))
        self.category = category


class BinaryClassifierOutputTarget:
    """A single-logit binary classifier: the output for ``category`` 1, its negation otherwise."""

    def __init__(self, category: int) -> None:
        self.category = category

    def __call__(self, model_output: Any) -> torch.Tensor:
        return model_output * (1 if self.category == 1 else -1)

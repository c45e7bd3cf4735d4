"""grad-cam's API on lumos: swap the import prefix ``pytorch_grad_cam`` for ``lumos.explain.grad_cam``.

A grad-cam script runs unchanged on lumos's engine::

    from lumos.explain.grad_cam import GradCAM                        # was: from pytorch_grad_cam import GradCAM
    from lumos.explain.grad_cam.utils.model_targets import ClassifierOutputTarget
    from lumos.explain.grad_cam.utils.image import show_cam_on_image

    with GradCAM(model=model, target_layers=[model.layer4[-1]]) as cam:
        grayscale_cam = cam(input_tensor=x, targets=[ClassifierOutputTarget(281)])  # numpy (N, H, W) float32
        visualization = show_cam_on_image(rgb_img, grayscale_cam[0], use_rgb=True)
        model_outputs = cam.outputs

Same class names, keywords (``model``, ``target_layers``, ``reshape_transform``, ``input_tensor``,
``targets``, ``aug_smooth``, ``eigen_smooth``), context-manager use, target classes, numpy float32 outputs
and grad-cam's defaults: with ``targets=None`` every method, ShapleyCAM included, explains the raw logit of
the predicted class (lumos's own :class:`lumos.explain.ShapleyCAM` defaults to ReST), and ``aug_smooth``
re-predicts the class on each augmented view, as grad-cam does. Exported are the methods lumos implements:
GradCAM, HiResCAM, GradCAMElementWise, GradCAMPlusPlus, XGradCAM, LayerCAM, ScoreCAM, ShapleyCAM. grad-cam's
other methods (EigenCAM, AblationCAM, FullGrad, ...) are not provided, so importing them fails at once.

Where lumos is stricter: one target per sample (grad-cam silently explains only the first ``len(targets)``
samples), errors as one-line :class:`~lumos.core.errors.LumosError` (grad-cam's ``__exit__`` swallows
``IndexError``), and the model's train/eval mode is restored after each call.
"""

from __future__ import annotations

from lumos.explain.grad_cam import utils
from lumos.explain.grad_cam.cams import (
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    ShapleyCAM,
    XGradCAM,
)
from lumos.explain.grad_cam.utils import model_targets, reshape_transforms
from lumos.explain.grad_cam.utils.image import deprocess_image
from lumos.explain.grad_cam.utils.svd_on_activations import get_2d_projection

__all__ = [
    "GradCAM",
    "HiResCAM",
    "GradCAMElementWise",
    "GradCAMPlusPlus",
    "XGradCAM",
    "LayerCAM",
    "ScoreCAM",
    "ShapleyCAM",
    "utils",
    "model_targets",
    "reshape_transforms",
    "deprocess_image",
    "get_2d_projection",
]

"""grad-cam's ``utils`` package on lumos: ``model_targets``, ``image``, ``reshape_transforms``,
``svd_on_activations``."""

from lumos.explain.grad_cam.utils import image, model_targets, reshape_transforms, svd_on_activations

__all__ = ["image", "model_targets", "reshape_transforms", "svd_on_activations"]

"""Image classifiers for the explainers: the built-in small CNN / ViT and torchvision / timm by name."""

from lumos.core.extras import require_extra

require_extra("lumos.vision", "vision")

from lumos.vision.models import TARGET_LAYERS, SmallCNN, SmallViT, VisionConfig, build_builtin
from lumos.vision.zoo import ModelBundle, default_target_layers, load_model, load_weights

__all__ = ["TARGET_LAYERS", "SmallCNN", "SmallViT", "VisionConfig", "build_builtin", "ModelBundle",
           "default_target_layers", "load_model", "load_weights"]

"""Built-in synthetic images with ground-truth boxes, and loaders for user images."""

from lumos.data.images import (
           IMAGE_EXTENSIONS,
           IMAGENET_MEAN,
           IMAGENET_STD,
           ImageFolder,
           list_images,
           load_image,
           preprocess,
)
from lumos.data.synthetic import CLASSES, SyntheticShapes, make_sample, synthetic_splits

__all__ = ["CLASSES", "SyntheticShapes", "make_sample", "synthetic_splits", "IMAGE_EXTENSIONS", "IMAGENET_MEAN",
           "IMAGENET_STD", "ImageFolder", "list_images", "load_image", "preprocess"]

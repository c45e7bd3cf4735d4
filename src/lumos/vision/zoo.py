"""Models by name: ``torchvision:NAME``, ``timm:NAME`` (random init + ``--weights FILE``; never a download)
and ``builtin:cnn`` / ``builtin:vit`` (trained on the synthetic shapes and cached).

Weights files: ``.safetensors``, or a state dict saved by ``torch.save`` (loaded with ``weights_only=True``;
a dict with a ``state_dict`` or ``model`` entry is unwrapped).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lumos.core.errors import LumosError, bad_param
from lumos.core.io import load_tensors, torch_load
from lumos.data.images import IMAGENET_MEAN, IMAGENET_STD
from lumos.vision.models import TARGET_LAYERS

__all__ = ["ModelBundle", "load_model", "load_weights", "default_target_layers"]


@dataclass
class ModelBundle:
    """A model in eval mode with what is needed to feed and explain it."""

    model: nn.Module
    spec: str
    image_size: int
    resize: int | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    target_layers: dict[str, str] = field(default_factory=dict)
    classes: list[str] | None = None
    info: dict = field(default_factory=dict)


def default_target_layers(arch: str, source: str) -> dict[str, str]:
    """The paper's two settings ("before_pool", "last_conv") for common architectures (reference §5)."""
    a = arch.lower()
    if source == "builtin":
        return dict(TARGET_LAYERS[a])
    if a.startswith(("resnet", "resnext", "wide_resnet")):
        last = "layer4[-1].conv2" if a in ("resnet18", "resnet34") else "layer4[-1].conv3"
        return {"before_pool": "layer4[-1]", "last_conv": last}
    if a.startswith("vgg"):
        return {"before_pool": "features[-1]", "last_conv": "features[-3]"}
    if a.startswith(("mobilenet", "efficientnet")):
        return {"before_pool": "features[-1]", "last_conv": "features[-1][0]"}
    if a.startswith("swin"):
        return {"before_pool": "norm", "last_conv": "layers[-1].blocks[-1].norm1"}
    if a.startswith(("vit", "deit")):
        return {"before_pool": "blocks[-1].norm1", "last_conv": "blocks[-1].norm1"}
    return {}


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load a safetensors file or a ``weights_only`` state dict into ``model`` (strict, clear errors)."""
    p = Path(path)
    if p.suffix == ".safetensors":
        state = load_tensors(p)
    else:
        state = torch_load(p)
        if isinstance(state, dict):
            for key in ("state_dict", "model"):
                if isinstance(state.get(key), dict):
                    state = state[key]
                    break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LumosError(f"{p} does not hold a state dict of tensors. Save one with "
                         "safetensors.torch.save_file(model.state_dict(), path).")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        raise LumosError(f"The weights in {p} do not fit this architecture: {first}") from None


def _hub_model(source: str, name: str, num_classes: int | None) -> nn.Module:
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    try:
        if source == "torchvision":
            import torchvision

            return torchvision.models.get_model(name, weights=None, **kwargs)
        import timm

        return timm.create_model(name, pretrained=False, **kwargs)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise bad_param("model", f"a known {source} architecture", name,
                        fix=f"({' '.join(str(exc).split())[:120]})") from None
    except ImportError:
        raise LumosError(f"--model {source}:... needs the '{source}' package: pip install 'lumos[vision]'.") from None


def load_model(spec: str, weights: str | os.PathLike[str] | None = None, *, num_classes: int | None = None,
               cache_dir: str | os.PathLike[str] | None = None, quick: bool = False, seed: int = 0,
               image_size: int = 224) -> ModelBundle:
    """Build the model named by ``spec`` ("torchvision:resnet50", "timm:swin_tiny_patch4_window7_224",
    "builtin:cnn", "builtin:vit"); hub models get ``weights`` (else random init, with a warning)."""
    source, _, name = str(spec).partition(":")
    if source not in ("torchvision", "timm", "builtin") or not name:
        raise bad_param("model", "'torchvision:NAME', 'timm:NAME', 'builtin:cnn' or 'builtin:vit'", spec)
    if source == "builtin":
        from lumos.vision.train import default_train_config, load_or_train_builtin

        if name not in TARGET_LAYERS:
            raise bad_param("model", "'builtin:cnn' or 'builtin:vit'", spec)
        if weights is not None:
            raise bad_param("weights", "unset for built-in models (they are trained and cached by lumos)", weights)
        trained = load_or_train_builtin(default_train_config(name, quick, seed), cache_dir or "runs/cache")
        from lumos.data.synthetic import CLASSES

        return ModelBundle(trained.model, spec, trained.train.image_size, None, trained.mean, trained.std,
                           default_target_layers(name, "builtin"), list(CLASSES),
                           {"test_accuracy": trained.test_accuracy, "weights": str(trained.path)})
    model = _hub_model(source, name, num_classes)
    info = {"weights": str(weights) if weights else None}
    if weights is not None:
        load_weights(model, weights)
    else:
        import warnings

        warnings.warn(f"{spec}: no --weights given, using random initialisation (lumos never downloads weights).",
                      stacklevel=2)
    model.eval()
    resize = round(image_size * 256 / 224)
    return ModelBundle(model, spec, image_size, resize, IMAGENET_MEAN, IMAGENET_STD,
                       default_target_layers(name, source), None, info)

"""Slow, obviously-correct twins of the fast paths (the executable spec; used by the tests).

* :func:`layer_states_reference` — one sample at a time, one layer at a time. The network after the layer
  is treated as a function f_b(Z) of a substituted layer output Z (a forward hook returns Z instead of the
  real output); g = ∇f_b(A) and H·A come from ``torch.autograd.functional.hvp`` on that function.
* :func:`postprocess_reference` — grad-cam's ``scale_cam_image`` order in numpy, with an explicit
  half-pixel bilinear resize (what ``cv2.resize(..., INTER_LINEAR)`` computes for float images).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from lumos.explain.base import BaseCAM, LayerSpec, LayerState, math_attention, resolve_layers
from lumos.explain.reshape import ReshapeSpec, infer_layout, to_map
from lumos.explain.targets import ClassSpec, ReST, Target, TargetSpec, make_target

__all__ = ["layer_states_reference", "postprocess_reference", "bilinear_reference"]


def _run_with(model: nn.Module, module: nn.Module, x: torch.Tensor, replace: torch.Tensor | None) -> tuple:
    seen: list[torch.Tensor] = []

    def hook(mod: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor | None:
        seen.append(output)
        return None if replace is None else replace.clone()  # a clone: in-place ops downstream keep Z intact

    h = module.register_forward_hook(hook)
    try:
        with math_attention():
            logits = model(x)
    finally:
        h.remove()
    return logits, seen[0]


def layer_states_reference(model: nn.Module, target_layers: LayerSpec, x: torch.Tensor, targets: TargetSpec = None,
                           *, hvp: bool = True, reshape: ReshapeSpec = None,
                           default_target: type[Target] | None = None) -> list[LayerState]:
    """Same contract as :func:`lumos.explain.base.layer_states`, computed per sample and per layer.

    For sample b and layer l: A = layer output on x[b:b+1]; f(Z) = u_b(model with the layer output replaced
    by Z); g = ∇f(A); HA = ∇²f(A)·A. The utility's class is fixed from the unperturbed logits.
    """
    model.eval()
    layers = resolve_layers(model, target_layers)
    target = make_target(targets, default_target or ReST)
    with torch.no_grad():
        full_logits = model(x)
    target(full_logits)
    states = []
    for li, (name, module) in enumerate(layers):
        acts, grads, hvps = [], [], []
        for b in range(x.shape[0]):
            xb = x[b:b + 1]
            with torch.no_grad():
                _, a = _run_with(model, module, xb, None)
            a = a.detach().clone()
            u_b = target.row_target(b)

            def f(z: torch.Tensor, xb: torch.Tensor = xb, module: nn.Module = module, u_b=u_b) -> torch.Tensor:
                return u_b(_run_with(model, module, xb, z)[0]).sum()

            z = a.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(f(z), z)
            hv = torch.autograd.functional.hvp(f, a, a)[1] if hvp else None
            acts.append(a)
            grads.append(g)
            hvps.append(hv)
        lay = infer_layout(model, module, acts[0], name, reshape, input_size=(int(x.shape[-2]), int(x.shape[-1])))
        states.append(LayerState(
            name=name, index=li, activations=to_map(torch.cat(acts), lay), grads=to_map(torch.cat(grads), lay),
            hvp=to_map(torch.cat(hvps), lay) if hvp else None,
        ))
    return states


def bilinear_reference(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Half-pixel bilinear resize of one (h, w) image to size (H, W), border replicated, in float64."""
    h, w = img.shape
    out_h, out_w = size

    def coords(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        src = np.clip(src, 0, n_in - 1)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    y0, y1, fy = coords(out_h, h)
    x0, x1, fx = coords(out_w, w)
    im = img.astype(np.float64)
    top = im[y0][:, x0] * (1 - fx) + im[y0][:, x1] * fx
    bot = im[y1][:, x0] * (1 - fx) + im[y1][:, x1] * fx
    return top * (1 - fy[:, None]) + bot * fy[:, None]


def _scale(cams: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    out = []
    for img in cams:
        img = img - img.min()
        img = img / (1e-7 + img.max())
        out.append(bilinear_reference(img, size) if size is not None else img)
    return np.asarray(out, dtype=np.float64)


def postprocess_reference(raw: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """grad-cam's order on raw per-layer maps [(B, h, w)] → (B, H, W): ReLU, min-max, resize; ReLU, mean, min-max."""
    per_layer = [_scale(np.maximum(r, 0), size) for r in raw]
    stacked = np.maximum(np.stack(per_layer, axis=1), 0)
    return _scale(stacked.mean(axis=1), None)


def explain_one_by_one(method: BaseCAM, x: torch.Tensor, targets: ClassSpec | Target = None) -> torch.Tensor:
    """Twin of ``method(x, targets)`` that explains each sample alone (targets: classes or a Target with classes,
    which are split per sample)."""
    if targets is None or isinstance(targets, Target):
        classes = None if targets is None else targets.classes
        ctor = type(targets) if isinstance(targets, Target) else method.default_target
        per = [None if classes is None else ctor(_pick(classes, b)) for b in range(x.shape[0])]
    else:
        per = [_pick(targets, b) for b in range(x.shape[0])]
    return torch.cat([method(x[b:b + 1], per[b]) for b in range(x.shape[0])])


def _pick(classes: int | Sequence[int] | torch.Tensor, b: int) -> int | list[int]:
    if isinstance(classes, int):
        return classes
    return [int(torch.as_tensor(classes).reshape(-1)[b])]

"""Turn a target layer's output into a (B, K, h, w) map: CNN maps, channels-last maps, transformer tokens.

The same reshape is applied to the activations, their gradients and the Hessian-vector product, so the
weights always meet the RESHAPED activations (grad-cam multiplies reshaped weights with un-reshaped
activations, which raises on ViT and mis-broadcasts on Swin). Every reshape here is a permutation or a
selection of elements, so it commutes with differentiation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

import torch
from torch import nn

from lumos.core.errors import LumosError, bad_param

__all__ = ["Layout", "ReshapeSpec", "infer_layout", "to_map", "nchw", "nhwc", "tokens"]

ReshapeSpec = Union[None, str, Callable[[torch.Tensor], torch.Tensor]]


@dataclass(frozen=True)
class Layout:
    """How to read one layer's output: ``kind`` in {"nchw", "nhwc", "tokens", "custom"}.

    For "tokens" (B, N, C): ``prefix`` leading tokens (CLS, distillation, registers) are dropped and the
    remaining ``grid[0]·grid[1]`` tokens are laid out row-major.
    """

    kind: str
    prefix: int = 0
    grid: tuple[int, int] | None = None
    fn: Callable[[torch.Tensor], torch.Tensor] | None = None


def nchw(t: torch.Tensor) -> torch.Tensor:
    """(B, K, h, w) → itself."""
    return t


def nhwc(t: torch.Tensor) -> torch.Tensor:
    """(B, h, w, K) → (B, K, h, w) (timm Swin, ConvNeXt blocks in channels-last)."""
    return t.permute(0, 3, 1, 2)


def tokens(t: torch.Tensor, prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """(B, prefix + h·w, K) → (B, K, h, w), dropping the ``prefix`` tokens (e.g. CLS)."""
    b, _, k = t.shape
    return t[:, prefix:, :].reshape(b, grid[0], grid[1], k).permute(0, 3, 1, 2)


def _square(n: int) -> int | None:
    r = math.isqrt(n)
    return r if r * r == n else None


def _token_layout(model: nn.Module, shape: torch.Size, name: str) -> Layout:
    n = shape[1]
    prefix = getattr(model, "num_prefix_tokens", None)
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if prefix is not None and grid is not None and int(prefix) + grid[0] * grid[1] == n:
        return Layout("tokens", int(prefix), (int(grid[0]), int(grid[1])))
    if prefix is not None and _square(n - int(prefix)):
        side = _square(n - int(prefix))
        return Layout("tokens", int(prefix), (side, side))
    for p in (0, 1):
        side = _square(n - p)
        if side:
            return Layout("tokens", p, (side, side))
    raise LumosError(
        f"Cannot lay out the {n} tokens of target layer '{name}' (shape {tuple(shape)}) as a square grid. "
        "Pass reshape='tokens:PREFIX:H:W' (e.g. 'tokens:1:14:14') or a callable returning (B, K, h, w)."
    )


def _parse(spec: str, name: str) -> Layout:
    if spec in ("nchw", "nhwc"):
        return Layout(spec)
    parts = spec.split(":")
    if parts[0] == "tokens" and len(parts) == 4:
        try:
            return Layout("tokens", int(parts[1]), (int(parts[2]), int(parts[3])))
        except ValueError:
            pass
    raise bad_param("reshape", "None, 'auto', 'nchw', 'nhwc', 'tokens:PREFIX:H:W' or a callable", spec,
                    owner=f"target layer '{name}'")


def infer_layout(model: nn.Module, module: nn.Module, output: torch.Tensor, name: str,
                 spec: ReshapeSpec = None) -> Layout:
    """Decide how to map ``output`` of ``module`` to (B, K, h, w).

    ``spec`` None/"auto": 4-D outputs are NCHW unless the model declares ``output_fmt == "NHWC"`` (timm Swin)
    or the module is a LayerNorm over the last axis; 3-D outputs are tokens with the model's
    ``num_prefix_tokens`` (timm) or, failing that, a square grid with 0 or 1 prefix (CLS) token.
    """
    if callable(spec):
        return Layout("custom", fn=spec)
    if spec not in (None, "auto"):
        return _parse(str(spec), name)
    if output.dim() == 4:
        if getattr(model, "output_fmt", None) == "NHWC":
            return Layout("nhwc")
        ns = getattr(module, "normalized_shape", None)
        if isinstance(module, nn.LayerNorm) and ns and output.shape[-1] == ns[-1] != output.shape[1]:
            return Layout("nhwc")
        return Layout("nchw")
    if output.dim() == 3:
        return _token_layout(model, output.shape, name)
    if output.dim() == 2:
        raise LumosError(
            f"Target layer '{name}' outputs shape {tuple(output.shape)} with no spatial axes (after pooling?). "
            "Pick a layer before global pooling, e.g. the last convolutional block."
        )
    raise LumosError(
        f"Target layer '{name}' outputs a {output.dim()}-D tensor {tuple(output.shape)}; lumos explains 2-D "
        "maps (B, K, h, w), channels-last maps or tokens (B, N, K). Pass reshape=callable for other layouts."
    )


def to_map(t: torch.Tensor, layout: Layout) -> torch.Tensor:
    """Apply ``layout`` to a tensor shaped like the layer output → (B, K, h, w)."""
    if layout.kind == "nchw":
        out = t
    elif layout.kind == "nhwc":
        out = nhwc(t)
    elif layout.kind == "tokens" and layout.grid is not None:
        out = tokens(t, layout.prefix, layout.grid)
    elif layout.kind == "custom" and layout.fn is not None:
        out = layout.fn(t)
    else:
        raise bad_param("layout", "a Layout made by infer_layout", layout)
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise bad_param("reshape", "a callable returning a (B, K, h, w) tensor", got)
    return out

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

__all__ = ["Layout", "ReshapeSpec", "infer_layout", "to_map", "nchw", "nhwc", "tokens", "declared_prefix",
           "declared_patch_size"]

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
    r = math.isqrt(n) if n > 0 else 0
    return r if r > 0 and r * r == n else None


#: attributes through which ViTs declare the tokens before the patches (timm, torchvision, DeiT, registers)
_PREFIX_PARAMS = ("cls_token", "class_token", "dist_token", "reg_token", "register_tokens")


def declared_prefix(model: nn.Module) -> int | None:
    """Tokens before the patch tokens as the model declares them: timm's ``num_prefix_tokens``, else the
    tokens of its ``cls_token`` / ``class_token`` / ``dist_token`` / ``reg_token`` / ``register_tokens``
    parameters ((1, n, D) each); None when the model declares none of these."""
    n = getattr(model, "num_prefix_tokens", None)
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    found = [getattr(model, a) for a in _PREFIX_PARAMS if isinstance(getattr(model, a, None), torch.Tensor)]
    if not found:
        return None
    return sum(int(t.shape[-2]) if t.dim() >= 2 else 1 for t in found)


def _pair(v: object) -> tuple[int, int] | None:
    if isinstance(v, int) and not isinstance(v, bool) and v > 0:
        return (v, v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(i, int) and i > 0 for i in v):
        return (int(v[0]), int(v[1]))
    return None


def declared_patch_size(model: nn.Module) -> tuple[int, int] | None:
    """The patch size (ph, pw) of a ViT: ``patch_embed.patch_size`` (timm), ``patch_size`` (torchvision), or
    the stride of its first convolution when that convolution is a patchify one (kernel = stride, no padding)."""
    for owner in (getattr(model, "patch_embed", None), model):
        p = _pair(getattr(owner, "patch_size", None))
        if p is not None:
            return p
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            k, st, pad = _pair(m.kernel_size), _pair(m.stride), m.padding
            if k is not None and k == st and k != (1, 1) and pad in ((0, 0), 0, "valid"):
                return k
            return None
    return None


def _token_layout(model: nn.Module, shape: torch.Size, name: str, input_size: tuple[int, int] | None) -> Layout:
    """Prefix tokens and grid of a (B, N, K) token output, from what the model declares (prefix-token
    parameters, patch size and the input size); a square-grid guess with 0 or 1 prefix tokens only when the
    model declares neither. Every contradiction is refused rather than guessed around."""
    n = int(shape[1])
    prefix = declared_prefix(model)
    patch = declared_patch_size(model)
    grid = None
    input_txt = patch_txt = ""  # "H×W" of the input and the patch, for the messages, when grid is known
    if patch is not None and input_size is not None:
        grid = (input_size[0] // patch[0], input_size[1] // patch[1])
        input_txt, patch_txt = f"{input_size[0]}×{input_size[1]}", f"{patch[0]}×{patch[1]}"
    hint = "Pass reshape='tokens:PREFIX:H:W' (e.g. 'tokens:1:14:14') or a callable returning (B, K, h, w)."
    where = f"target layer '{name}' (shape {tuple(shape)})"
    if prefix is not None and grid is not None:
        if prefix + grid[0] * grid[1] == n:
            return Layout("tokens", prefix, grid)
        raise LumosError(f"The {n} tokens of {where} are not the model's {prefix} prefix token(s) plus its "
                         f"{grid[0]}×{grid[1]} patch grid (input {input_txt}, patch {patch_txt}). {hint}")
    if prefix is not None:
        side = _square(n - prefix)
        if side:
            return Layout("tokens", prefix, (side, side))
        raise LumosError(f"The model declares {prefix} prefix token(s) (CLS/registers), and the other {n - prefix} "
                         f"tokens of {where} do not form a square grid; lumos does not guess a non-square "
                         f"grid. {hint}")
    if grid is not None:
        extra = n - grid[0] * grid[1]
        if extra >= 0:
            return Layout("tokens", extra, grid)
        raise LumosError(f"{where} has {n} tokens, fewer than the {grid[0]}×{grid[1]} patches of a "
                         f"{input_txt} input with patch {patch_txt}. {hint}")
    for p in (0, 1):
        side = _square(n - p)
        if side:
            return Layout("tokens", p, (side, side))
    raise LumosError(f"Cannot lay out the {n} tokens of {where} as a square grid. {hint}")


def _parse(spec: str, name: str) -> Layout:
    if spec in ("nchw", "nhwc"):
        return Layout(spec)
    parts = spec.split(":")
    if parts[0] == "tokens" and len(parts) == 4:
        try:
            prefix, h, w = int(parts[1]), int(parts[2]), int(parts[3])
        except ValueError:
            prefix = h = w = -1
        if prefix >= 0 and h > 0 and w > 0:
            return Layout("tokens", prefix, (h, w))
    raise bad_param("reshape", "None, 'auto', 'nchw', 'nhwc', 'tokens:PREFIX:H:W' (PREFIX ≥ 0, H, W ≥ 1) or a "
                    "callable", spec, owner=f"target layer '{name}'")


def _check_spec(layout: Layout, output: torch.Tensor, name: str, spec: str) -> Layout:
    """The layout named by ``reshape=spec`` must fit the layer's output exactly."""
    shape = tuple(output.shape)
    if layout.kind == "tokens":
        if output.dim() != 3:
            raise bad_param("reshape", "'nchw' or 'nhwc' for a 4-D layer output", repr(spec),
                            owner=f"target layer '{name}'", fix=f"The layer outputs shape {shape}, not tokens (B, N, K).")
        gh, gw = layout.grid or (0, 0)
        if layout.prefix + gh * gw != shape[1]:
            side = _square(shape[1] - layout.prefix) if shape[1] > layout.prefix else None
            fix = f" e.g. 'tokens:{layout.prefix}:{side}:{side}'" if side else ""
            raise LumosError(f"reshape={spec!r} needs {layout.prefix} + {gh}·{gw} = {layout.prefix + gh * gw} "
                             f"tokens, but target layer '{name}' outputs {shape[1]} (shape {shape}). Give the "
                             f"layer's real prefix and grid{fix}.")
    elif output.dim() != 4:
        raise bad_param("reshape", "'tokens:PREFIX:H:W' for a token output (B, N, K)", repr(spec),
                        owner=f"target layer '{name}'", fix=f"The layer outputs shape {shape}.")
    return layout


def infer_layout(model: nn.Module, module: nn.Module, output: torch.Tensor, name: str,
                 spec: ReshapeSpec = None, *, input_size: tuple[int, int] | None = None) -> Layout:
    """Decide how to map ``output`` of ``module`` to (B, K, h, w).

    ``spec`` None/"auto": 4-D outputs are NCHW unless the model declares ``output_fmt == "NHWC"`` (timm Swin)
    or the module is a LayerNorm over the last axis. 3-D outputs are tokens: the prefix (CLS, distillation,
    register tokens) is what the model declares (timm's ``num_prefix_tokens``, or its ``cls_token`` /
    ``class_token`` / ... parameters), the grid is the input size (H, W) ``input_size`` over the model's patch
    size; a model that declares neither gets a square grid with 0 or 1 prefix token. A token count that
    contradicts what the model declares is an error, never a silent re-layout. An explicit ``spec`` must fit.
    """
    if callable(spec):
        return Layout("custom", fn=spec)
    if spec not in (None, "auto"):
        return _check_spec(_parse(str(spec), name), output, name, str(spec))
    if output.dim() == 4:
        if getattr(model, "output_fmt", None) == "NHWC":
            return Layout("nhwc")
        ns = getattr(module, "normalized_shape", None)
        if isinstance(module, nn.LayerNorm) and ns and output.shape[-1] == ns[-1] != output.shape[1]:
            return Layout("nhwc")
        return Layout("nchw")
    if output.dim() == 3:
        return _token_layout(model, output.shape, name, input_size)
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

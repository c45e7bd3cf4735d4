"""Per-sample last-layer gradient statistics without materialising per-sample weight gradients.

For a classifier whose last layer is ``nn.Linear`` (logits ``z = W h + b``, ``W`` of shape (C, D)) and the
per-sample cross-entropy ``ℓ_i = CE(z_i, y_i)``, the per-sample gradients of the last layer are

    ∇_b ℓ_i = g_i = softmax(z_i) − onehot(y_i)            (C,)
    ∇_W ℓ_i = g_i h_iᵀ                                     (C, D)

so everything about them (norms, inner products with a fixed direction, sums) follows from the pair
``(g_i, h_i)``: ``‖∇_W ℓ_i‖² = ‖g_i‖²‖h_i‖²`` and ``⟨∇_W ℓ_i, A⟩ = g_iᵀ A h_i``. This module captures
``(ℓ_i, g_i, h_i)`` with a forward hook on the last linear layer (memory O(B·(C + D)) per batch), and
provides :func:`explicit_last_layer_grads`, the slow torch.func twin that does materialise them (the oracle).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lumos.core.errors import LumosError, bad_param
from lumos.core.validation import check_tensor

__all__ = [
    "LastLayerBatch",
    "find_last_linear",
    "capture_last_layer",
    "last_layer_stats",
    "stats_from_capture",
    "check_capture",
    "check_labels",
    "ce_logit_grad",
    "explicit_last_layer_grads",
]


@dataclass
class LastLayerBatch:
    """Per-sample statistics of one batch (all detached).

    Attributes:
        loss: (B,) per-sample cross-entropy.
        g: (B, C) gradient of the loss w.r.t. the logits, softmax − onehot (= the bias gradient).
        h: (B, D) input of the last linear layer (penultimate features).
        logits: (B, C) model output.
    """

    loss: torch.Tensor
    g: torch.Tensor
    h: torch.Tensor
    logits: torch.Tensor


def find_last_linear(model: nn.Module, owner: str | None = None) -> nn.Linear:
    """The last ``nn.Linear`` registered in ``model`` (its classifier head).

    Raises a clear error when the model has none. Whether its output really is the model's output is checked
    when capturing (:func:`capture_last_layer`).
    """
    if not isinstance(model, nn.Module):
        raise bad_param("model", "a torch.nn.Module", type(model).__name__, owner=owner, type_error=True)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise bad_param(
            "model", "a classifier whose last layer is nn.Linear", f"{type(model).__name__} with no nn.Linear",
            owner=owner, fix="Put an nn.Linear head last (logits = head(features)).",
        )
    return linears[-1]


@contextmanager
def capture_last_layer(model: nn.Module, owner: str | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hook on the last linear layer; yields a dict filled with ``h`` and ``z`` at every forward.

    The hook stores detached tensors and is always removed on exit. Example::

        with capture_last_layer(model) as cap:
            logits = model(x)
        h, z = cap["h"], cap["z"]   # (B, D), (B, C)
    """
    layer = find_last_linear(model, owner=owner)
    store: dict[str, torch.Tensor] = {}

    def hook(_mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        store["h"] = inputs[0].detach()
        store["z"] = output.detach()

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def ce_logit_grad(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample cross-entropy and its logit gradient.

    Args:
        logits: (B, C) float.
        y: (B,) int64 class indices in [0, C).
    Returns:
        (loss (B,), g (B, C)) with ``g = softmax(logits) − onehot(y)``, both in the dtype of ``logits``.
    """
    logp = F.log_softmax(logits, dim=-1)
    loss = -logp.gather(1, y[:, None]).squeeze(1)
    g = logp.exp()
    g[torch.arange(len(y), device=y.device), y] -= 1.0
    return loss, g


def check_labels(y: torch.Tensor, n_classes: int, owner: str | None = None, sync: bool = True) -> None:
    """``y`` must be a 1-D integer tensor of class indices in [0, n_classes). With ``sync=False`` the range
    check (a host sync) is skipped for non-CPU tensors; the caller checks later."""
    if not isinstance(y, torch.Tensor) or y.dim() != 1:
        check_tensor(y, "y", ndim=1, owner=owner)
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise bad_param("y", "an integer tensor of class indices", str(y.dtype), owner=owner, type_error=True)
    if len(y) and (sync or y.device.type == "cpu"):
        lo, hi = (int(v) for v in torch.aminmax(y))
        if lo < 0 or hi >= n_classes:
            raise bad_param("y", f"class indices in [0, {n_classes})", f"labels in [{lo}, {hi}]", owner=owner,
                            fix="Map labels to 0..C-1 and make the last layer output C logits.")


@torch.no_grad()
def last_layer_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, owner: str | None = None) -> LastLayerBatch:
    """Run ``model(x)`` once (no grad) and return per-sample ``(loss, g, h, logits)`` of the last linear layer.

    Checks that the model's output is the last linear layer's output (otherwise the head is not last).

    Args:
        model: classifier returning (B, C) logits whose last layer is ``nn.Linear``.
        x: a batch of inputs (any shape the model takes).
        y: (B,) int64 labels.
    """
    with capture_last_layer(model, owner=owner) as cap:
        out = model(x)
    return stats_from_capture(out, cap, y, owner=owner)


def check_capture(out: torch.Tensor, cap: dict[str, torch.Tensor], y: torch.Tensor,
                  owner: str | None = None, sync_labels: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a captured forward and return ``(z (B, C), h (B, D))``: the model output must be the last
    linear layer's output (a classifier head that is last), and ``y`` valid class indices for C logits."""
    if "z" not in cap:
        raise LumosError("The model's forward never called its last nn.Linear layer; its last layer must be nn.Linear.")
    z = cap["z"]
    same = isinstance(out, torch.Tensor) and out.shape == z.shape and (
        out.data_ptr() == z.data_ptr() or torch.allclose(out.detach(), z, rtol=0.0, atol=0.0, equal_nan=True))
    if not same:
        raise bad_param(
            "model", "a classifier whose output is the output of its last nn.Linear layer",
            f"{type(out).__name__} output that differs from the last linear layer's",
            owner=owner, fix="Return the logits of an nn.Linear head directly (apply softmax in the loss).",
        )
    if z.dim() != 2:
        raise bad_param("model output", "(B, C) logits", f"shape {tuple(z.shape)}", owner=owner)
    check_labels(y, z.shape[1], owner, sync=sync_labels)
    if len(y) != len(z):
        raise bad_param("y", f"{len(z)} labels, one per row of the logits", f"{len(y)} labels", owner=owner,
                        fix="Pass the labels of exactly the batch that was forwarded.")
    return z, cap["h"].reshape(len(z), -1)


def stats_from_capture(out: torch.Tensor, cap: dict[str, torch.Tensor], y: torch.Tensor,
                       owner: str | None = None) -> LastLayerBatch:
    """Turn a captured forward (``out`` = model output, ``cap`` from :func:`capture_last_layer`) into stats."""
    z, h = check_capture(out, cap, y, owner=owner)
    loss, g = ce_logit_grad(z.float() if z.dtype in (torch.float16, torch.bfloat16) else z, y)
    return LastLayerBatch(loss=loss, g=g, h=h, logits=z)


def explicit_last_layer_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, include_weight: bool = True
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Oracle: per-sample losses and explicit last-layer gradients by torch.func (materialises C·D per sample).

    Returns ``(loss (B,), grads (B, C + C·D))`` with grads = ``[∇_b ℓ_i, vec(∇_W ℓ_i)]`` (row-major W, as
    ``nn.Linear.weight``), or (B, C) bias gradients only when ``include_weight=False``. The layer must have a bias.
    """
    from torch.func import functional_call, grad, vmap

    layer = find_last_linear(model)
    if layer.bias is None:
        raise bad_param("model", "a last nn.Linear with a bias", "bias=None", fix="Use nn.Linear(..., bias=True).")
    names = {id(p): n for n, p in model.named_parameters()}
    w_name, b_name = names[id(layer.weight)], names[id(layer.bias)]
    params = {n: p.detach() for n, p in model.named_parameters()}

    def loss_fn(w: torch.Tensor, b: torch.Tensor, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, {**params, w_name: w, b_name: b}, (xi[None],))
        return F.cross_entropy(out, yi[None])

    gw, gb = vmap(grad(loss_fn, argnums=(0, 1)), in_dims=(None, None, 0, 0))(params[w_name], params[b_name], x, y)
    with torch.no_grad():
        loss = F.cross_entropy(model(x), y, reduction="none")
    grads = torch.cat([gb, gw.reshape(len(x), -1)], dim=1) if include_weight else gb
    return loss.detach(), grads.detach()

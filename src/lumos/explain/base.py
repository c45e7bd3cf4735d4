"""The one CAM explainer base: hooks, forward, target utilities, gradients, Hessian-vector products, maps.

Every method is a small subclass that fills one hole, :meth:`BaseCAM.weights`, and names how its weights
meet the activations (``combine_kind``: per channel, per element, or per element then ReLU; see
:mod:`lumos.explain.combine`). The base owns the algorithm:

1. Forward with autograd OFF until the first target layer runs; its forward hook turns autograd on and, if
   its output does not already require grad, swaps in a fresh leaf ``A`` (a clone goes downstream, so
   in-place ops after the layer cannot change ``A``). Nothing on the input side is recorded.
2. ``u = target(output)`` (B,) — per-sample utilities (logits (B, C), or any output a target reduces:
   per-pixel scores (B, C, H, W), dicts); ``g_l = ∂Σ_b u_b / ∂A_l`` for all layers in one
   ``autograd.grad`` call (``create_graph`` only when a method needs the Hessian).
3. For methods that need it, per layer ``Hv_l = ∂⟨g_l, sg(A_l)⟩/∂A_l`` — one batched call; the graph only
   spans the network AFTER the target layer, and it is kept until the last layer has been processed.
   In eval mode samples are independent, so the batched HVP is the stack of per-sample HVPs.
4. Activations, gradients and HVPs are reshaped to (B, K, h, w) with the same layout (tokens → maps, CLS
   dropped), the method's weights are combined with the activations into a raw map per layer (summed over
   channels, or projected on their first principal component with ``eigen_smooth``), and
   :mod:`lumos.explain.postprocess` applies grad-cam's ReLU / min-max / resize / mean order, in torch on the
   model's device.
5. With ``aug_smooth`` steps 1-4 run on six views of the input (horizontal flip × brightness 0.9 / 1 / 1.1,
   grad-cam's test-time augmentation) and the un-flipped maps are averaged.

Hooks live only for the duration of one call, so nothing leaks even without ``with``; the context manager
and :meth:`release` drop the tensors kept from the last call.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import torch
from torch import nn

from lumos.core.errors import LumosError, bad_param
from lumos.core.validation import check_bool, check_finite, check_tensor
from lumos.explain.combine import KINDS, combine
from lumos.explain.postprocess import postprocess
from lumos.explain.reshape import Layout, ReshapeSpec, infer_layout, to_map
from lumos.explain.targets import Logit, Target, TargetSpec, make_target, output_batch_size

__all__ = ["BaseCAM", "ChannelCAM", "LayerState", "resolve_layers", "model_device", "LayerSpec", "layer_states",
           "AUG_VIEWS"]

#: grad-cam's test-time augmentation (ttach ``HorizontalFlip()`` × ``Multiply([0.9, 1, 1.1])``), in its order:
#: (flip horizontally, brightness factor)
AUG_VIEWS: tuple[tuple[bool, float], ...] = tuple((f, m) for f in (False, True) for m in (0.9, 1.0, 1.1))

LayerSpec = Union[nn.Module, str, Sequence[Union[nn.Module, str]]]

_TOKEN = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a parameter-free model)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _model_dtype(model: nn.Module) -> torch.dtype:
    for t in model.parameters():
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()


def _get_child(module: nn.Module, token: str, path: str) -> nn.Module:
    if re.fullmatch(r"-?\d+", token) and isinstance(module, (nn.Sequential, nn.ModuleList)):
        idx = int(token)
        if -len(module) <= idx < len(module):
            return module[idx]
    child = module._modules.get(token)
    if child is None:
        raise KeyError(path)
    return child


def _resolve_one(model: nn.Module, spec: nn.Module | str, names: dict[int, str]) -> tuple[str, nn.Module]:
    if isinstance(spec, nn.Module):
        name = names.get(id(spec))
        if name is None:
            raise bad_param("target_layers", "submodules of the explained model", type(spec).__name__,
                            fix="Pass modules taken from this model, e.g. model.layer4[-1], or dotted names.")
        return name or "<model>", spec
    if not isinstance(spec, str) or not spec.strip():
        raise bad_param("target_layers", "modules or dotted names like 'layer4[-1].conv2'", spec, type_error=True)
    module = model
    tokens = [m.group(1) or m.group(2) for m in _TOKEN.finditer(spec.strip())]
    try:
        for tok in tokens:
            module = _get_child(module, tok, spec)
    except KeyError:
        import difflib

        close = difflib.get_close_matches(spec, [n for n in names.values() if n], n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise LumosError(f"The model has no layer named '{spec}'.{hint} "
                         "List names with [n for n, _ in model.named_modules()].") from None
    return spec, module


def resolve_layers(model: nn.Module, target_layers: LayerSpec) -> list[tuple[str, nn.Module]]:
    """Modules or dotted names (``'layer4'``, ``'layer4[-1].conv2'``, ``'layer4.1'``) → [(name, module)]."""
    specs = [target_layers] if isinstance(target_layers, (nn.Module, str)) else list(target_layers)
    if not specs:
        raise bad_param("target_layers", "at least one layer", "an empty list")
    names = {id(m): n for n, m in model.named_modules()}
    out = [_resolve_one(model, s, names) for s in specs]
    if len({id(m) for _, m in out}) != len(out):
        raise bad_param("target_layers", "distinct layers", [n for n, _ in out])
    return out


@contextlib.contextmanager
def math_attention(enabled: bool = True) -> Iterator[None]:
    """Route ``scaled_dot_product_attention`` to the math kernel, whose backward is itself differentiable
    (the fused CPU/CUDA kernels have no double backward, which the Hessian-vector product needs)."""
    if not enabled:
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        yield


def _expected_channels(model: nn.Module) -> int | None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
        if isinstance(m, nn.Linear):
            return None
    return None


@dataclass
class LayerState:
    """What a method sees for one target layer, all (B, K, h, w) in map layout and detached.

    ``grads`` is ∂u/∂A (None for gradient-free methods); ``hvp`` is H_A·A (None unless the method needs it).
    """

    name: str
    index: int
    activations: torch.Tensor
    grads: torch.Tensor | None
    hvp: torch.Tensor | None


class _Capture:
    """Forward hooks that record each target layer's output once per forward (see module docstring)."""

    def __init__(self, layers: list[tuple[str, nn.Module]], track_grad: bool) -> None:
        self.layers = layers
        self.track_grad = track_grad
        self.outputs: list[torch.Tensor | None] = [None] * len(layers)
        self.handles: list[Any] = []

    def __enter__(self) -> _Capture:
        for i, (_, module) in enumerate(self.layers):
            self.handles.append(module.register_forward_hook(self._hook(i)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def _hook(self, i: int) -> Any:
        name = self.layers[i][0]

        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            if not isinstance(output, torch.Tensor):
                raise LumosError(f"Target layer '{name}' returns {type(output).__name__}, not a tensor. "
                                 "Pick a submodule that returns one tensor.")
            if self.outputs[i] is not None:
                raise LumosError(f"Target layer '{name}' ran more than once in one forward pass (a shared "
                                 "module). Pick a layer that runs once.")
            if not self.track_grad:
                self.outputs[i] = output.detach()
                return None
            torch.set_grad_enabled(True)
            if output.requires_grad:
                self.outputs[i] = output
                return None
            leaf = output.detach().requires_grad_(True)
            self.outputs[i] = leaf
            return leaf.clone()

        return hook


class BaseCAM:
    """Class activation maps from target-layer activations, gradients and (optionally) HVPs.

    Args:
        model: a network returning logits (B, C), or any output (per-pixel scores (B, C, H, W), a dict, a list
            of B items) that the ``targets`` reduce to one score per sample. Put in eval mode during each call
            (restored after).
        target_layers: one or more modules of ``model`` or dotted names (``"layer4[-1].conv2"``).
        reshape: layout of the layer outputs: None/"auto" (NCHW maps; NHWC for timm Swin / LayerNorm;
            tokens with the model's CLS/register tokens dropped for ViTs), "nchw", "nhwc",
            "tokens:PREFIX:H:W", or a callable → (B,K,h,w) (grad-cam's ``reshape_transform``).

    Call ``cams = method(x, targets=None, aug_smooth=False, eigen_smooth=False)`` with x (B, C_in, H, W) →
    cams (B, H, W) in [0, 1] on the model's device. ``targets``: None (the predicted class, with the method's
    ``default_target``: the raw logit, except ShapleyCAM's ReST), class indices (int, list, (B,) tensor), a
    :class:`~lumos.explain.targets.Target` (e.g. ``Segmentation(c, mask)``), one callable per sample, or a
    batch callable. After a call, ``outputs_`` holds the model output (logits (B, C)) and ``classes_`` the
    explained classes (B,) or None.
    """

    uses_gradients: ClassVar[bool] = True
    # the next three are class defaults that an instance may set (ShapleyCAM's variant, layer_states' options)
    uses_hvp: bool = False
    default_target: type[Target] = Logit
    #: how :meth:`weights` meet the activations: "channel" (B, K), "element" or "element_relu" (B, K, h, w)
    combine_kind: str = "channel"
    #: with ``aug_smooth`` and a target without classes: explain the class predicted on the original input
    #: in every view (True), or each view's own prediction (False, grad-cam's behaviour)
    aug_fixes_classes: ClassVar[bool] = True
    name: ClassVar[str] = "cam"

    def __init__(self, model: nn.Module, target_layers: LayerSpec, *, reshape: ReshapeSpec = None) -> None:
        if not isinstance(model, nn.Module):
            raise bad_param("model", "a torch.nn.Module", type(model).__name__, owner=type(self).__name__,
                            type_error=True)
        self.model = model
        self.layers = resolve_layers(model, target_layers)
        self.reshape = reshape
        self.outputs_: Any = None
        self.classes_: torch.Tensor | None = None
        self.layouts_: list[Layout] = []

    # --- the one hole a method fills -------------------------------------------------------------------
    def weights(self, *, state: LayerState, x: torch.Tensor, target: Target) -> torch.Tensor:
        """The method's weights for one layer: (B, K) for ``combine_kind="channel"``, else (B, K, h, w).

        ``state`` holds the layer's maps (B, K, h, w); ``x`` is the input (B, C_in, H, W) on the model's
        device and ``target`` the batched utility.
        """
        raise NotImplementedError

    def layer_cam(self, *, state: LayerState, x: torch.Tensor, target: Target, eigen_smooth: bool = False
                  ) -> torch.Tensor:
        """Raw map of one layer (B, h, w), before ReLU and scaling: :func:`~lumos.explain.combine.combine` of
        :meth:`weights` and the activations (``eigen_smooth``: first principal component instead of the sum)."""
        w = self.weights(state=state, x=x, target=target)
        return combine(w, state.activations, self.combine_kind, eigen_smooth=eigen_smooth)

    # --- public call -------------------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, targets: TargetSpec = None, *, aug_smooth: bool = False,
                 eigen_smooth: bool = False) -> torch.Tensor:
        """Explain a batch: x (B, C_in, H, W) → cams (B, H, W) in [0, 1] on the model's device.

        ``aug_smooth``: average the maps of grad-cam's six test-time views (horizontal flip × brightness
        0.9/1/1.1), each map flipped back. With ``targets=None`` (or a target without classes) every view
        explains the class predicted on the original input. ``eigen_smooth``: reduce each layer's weighted
        activations by their first principal component instead of summing the channels (grad-cam's
        ``get_2d_projection``).
        """
        owner = type(self).__name__
        check_bool(aug_smooth, "aug_smooth", owner=owner)
        check_bool(eigen_smooth, "eigen_smooth", owner=owner)
        if self.combine_kind not in KINDS:
            raise bad_param("combine_kind", "one of " + ", ".join(KINDS), self.combine_kind, owner=owner)
        x = self._prepare_input(x)
        target = make_target(targets, self.default_target)
        was_training = self.model.training
        self.model.eval()
        try:
            cams = self._smoothed(x, target, eigen_smooth) if aug_smooth else self._explain(x, target, eigen_smooth)
        finally:
            self.model.train(was_training)
        if not bool(torch.isfinite(cams).all()):  # finite input and logits, yet inf/NaN gradients: keep [0, 1]
            import warnings

            warnings.warn(f"{owner}: {int((~torch.isfinite(cams)).sum())} non-finite CAM values "
                          "(overflowing gradients) were set to 0.", RuntimeWarning, stacklevel=2)
            cams = torch.nan_to_num(cams, nan=0.0, posinf=0.0, neginf=0.0)
        return cams

    def _explain(self, x: torch.Tensor, target: Target, eigen_smooth: bool) -> torch.Tensor:
        states = self._layer_states(x, target)
        size = (int(x.shape[-2]), int(x.shape[-1]))
        with torch.no_grad():
            raw = [self.layer_cam(state=s, x=x, target=target, eigen_smooth=eigen_smooth) for s in states]
            return postprocess([r.detach() for r in raw], size)

    def _smoothed(self, x: torch.Tensor, target: Target, eigen_smooth: bool) -> torch.Tensor:
        """Mean over :data:`AUG_VIEWS` of the view's maps, flipped back (grad-cam's ``aug_smooth``)."""
        views = list(AUG_VIEWS)
        fix = self.aug_fixes_classes and target.takes_classes and target.classes is None
        if fix:  # the original input first: its prediction is the class every view explains
            views.remove((False, 1.0))
            views.insert(0, (False, 1.0))
        total = None
        first: tuple[Any, torch.Tensor | None] = (None, None)
        for i, (flip, factor) in enumerate(views):
            xv = x.flip(-1) if flip else x
            xv = xv * factor if factor != 1.0 else xv
            cam = self._explain(xv, target.mirrored() if flip else target, eigen_smooth)
            cam = cam.flip(-1) if flip else cam
            total = cam if total is None else total + cam
            if i == 0 and fix:
                first = (self.outputs_, self.classes_)
                target = copy.copy(target)
                target.classes = self.classes_
        if fix:
            self.outputs_, self.classes_ = first
        assert total is not None  # AUG_VIEWS is a non-empty constant: the loop ran
        return total / len(views)

    def _prepare_input(self, x: Any) -> torch.Tensor:
        owner = type(self).__name__
        x = check_tensor(x, "x", ndim=4, owner=owner)
        if not x.is_floating_point():
            raise bad_param("x", "a floating-point image batch (B, C, H, W)", f"dtype {x.dtype}", owner=owner,
                            type_error=True, fix="Convert with x.float() and normalise as the model expects.")
        want = _expected_channels(self.model)
        if want is not None and x.shape[1] != want:
            raise bad_param("x", f"a batch with {want} channels (the model's first conv)",
                            f"shape {tuple(x.shape)}", owner=owner,
                            fix="Convert grayscale/RGBA images to the model's channel count.")
        if x.shape[0] == 0:
            raise bad_param("x", "a non-empty batch", f"shape {tuple(x.shape)}", owner=owner)
        check_finite(x, "x", owner=owner, fix="Replace NaN/inf pixels before explaining (e.g. torch.nan_to_num).")
        if torch.is_inference_mode_enabled():
            raise LumosError(f"{owner} needs autograd; call it outside torch.inference_mode().")
        return x.detach().to(device=model_device(self.model), dtype=_model_dtype(self.model))

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        prev = torch.is_grad_enabled()
        torch.set_grad_enabled(False)
        try:
            with _Capture(self.layers, self.uses_gradients) as cap, math_attention(self.uses_hvp):
                logits = self.model(x)
        finally:
            torch.set_grad_enabled(prev)
        self._check_output(logits, int(x.shape[0]))
        missing = [n for (n, _), o in zip(self.layers, cap.outputs) if o is None]
        if missing:
            raise LumosError(f"Target layer(s) {', '.join(missing)} did not run in the forward pass. "
                             "Pick layers on the path from the input to the logits.")
        return logits, [o for o in cap.outputs if o is not None]

    def _check_output(self, output: Any, batch: int) -> None:
        """The model output has one row per input (a tensor (B, ...), a dict of them, or a list of B items)
        and is finite."""
        owner = type(self).__name__
        if output_batch_size(output) != batch:
            got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise bad_param("model", f"a network returning one output row per input ({batch} rows): logits (B, C), "
                            "per-pixel scores (B, C, H, W), a dict of such tensors or a list of B items",
                            f"output {got}", owner=owner)
        tensors = (list(output.values()) if isinstance(output, dict) else
                   list(output) if isinstance(output, (list, tuple)) else [output])
        for t in tensors:
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                check_finite(t, "model output", owner=owner,
                             fix="The model produces NaN/inf on this input; check its weights.")

    def _layer_states(self, x: torch.Tensor, target: Target) -> list[LayerState]:
        logits, acts = self._forward(x)
        grads: list[torch.Tensor | None] = [None] * len(acts)
        hvps: list[torch.Tensor | None] = [None] * len(acts)
        if self.uses_gradients:
            with torch.enable_grad():
                u = target(logits)
                if not u.requires_grad:
                    raise LumosError("The target utility does not depend on the target layers; pick layers "
                                     "on the path to the logits.")
                g = torch.autograd.grad(u.sum(), acts, create_graph=self.uses_hvp, allow_unused=True)
                full = [torch.zeros_like(a) if gi is None else gi for a, gi in zip(acts, g)]
                grads = list(full)
                if self.uses_hvp:
                    hvps = self._hvps(acts, full)
        else:
            with torch.no_grad():
                target(logits)
        self.outputs_ = _detach(logits)
        self.classes_ = target.classes_
        size = (int(x.shape[-2]), int(x.shape[-1]))
        self.layouts_ = [infer_layout(self.model, m, a, n, self.reshape, input_size=size)
                         for (n, m), a in zip(self.layers, acts)]
        states = []
        for i, ((name, _), a, lay) in enumerate(zip(self.layers, acts, self.layouts_)):
            gi, hi = grads[i], hvps[i]
            states.append(LayerState(
                name=name, index=i, activations=to_map(a.detach(), lay),
                grads=None if gi is None else to_map(gi.detach(), lay),
                hvp=None if hi is None else to_map(hi.detach(), lay),
            ))
        return states

    @staticmethod
    def _hvps(acts: list[torch.Tensor], grads: list[torch.Tensor]) -> list[torch.Tensor | None]:
        """Per layer H_A·A = ∂⟨g, sg(A)⟩/∂A, batched; the graph is kept until the last layer."""
        out: list[torch.Tensor | None] = []
        last = max((i for i, g in enumerate(grads) if g.requires_grad), default=-1)
        for i, (a, g) in enumerate(zip(acts, grads)):
            if not g.requires_grad:  # u is linear in A after this layer: H = 0
                out.append(torch.zeros_like(a))
                continue
            (hv,) = torch.autograd.grad(g, a, grad_outputs=a.detach(), retain_graph=i < last, allow_unused=True)
            out.append(torch.zeros_like(a) if hv is None else hv)
        return out

    # --- resources ---------------------------------------------------------------------------------------
    def release(self) -> None:
        """Drop the tensors kept from the last call (hooks never outlive a call)."""
        self.outputs_ = None
        self.classes_ = None

    def __enter__(self) -> BaseCAM:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(layers={[n for n, _ in self.layers]})"


class ChannelCAM(BaseCAM):
    """Methods that weight each channel: cam = Σ_k w_k A_k; :meth:`weights` returns (B, K)."""

    combine_kind = "channel"


def _detach(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.detach()
    if isinstance(output, dict):
        return {k: _detach(v) for k, v in output.items()}
    if isinstance(output, (list, tuple)):
        return [_detach(v) for v in output]
    return output


class _Derivatives(BaseCAM):
    def __init__(self, model: nn.Module, target_layers: LayerSpec, *, reshape: ReshapeSpec, hvp: bool,
                 default_target: type[Target]) -> None:
        super().__init__(model, target_layers, reshape=reshape)
        self.uses_hvp = hvp
        self.default_target = default_target


def layer_states(model: nn.Module, target_layers: LayerSpec, x: torch.Tensor, targets: TargetSpec = None, *,
                 hvp: bool = True, reshape: ReshapeSpec = None,
                 default_target: type[Target] | None = None) -> list[LayerState]:
    """Activations, gradients ∂u/∂A and (``hvp=True``) H_A·A of every target layer, batched, as maps.

    The fast path every explainer uses; its twin is :func:`lumos.explain.naive.layer_states_reference`.
    Returns one :class:`LayerState` per layer with (B, K, h, w) tensors. ``default_target`` defaults to ReST.
    """
    from lumos.explain.targets import ReST

    d = _Derivatives(model, target_layers, reshape=reshape, hvp=hvp, default_target=default_target or ReST)
    x = d._prepare_input(x)
    was_training = model.training
    model.eval()
    try:
        return d._layer_states(x, make_target(targets, d.default_target))
    finally:
        model.train(was_training)

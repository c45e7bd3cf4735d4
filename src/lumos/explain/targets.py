"""Utilities (targets) explained by the CAM methods: raw logit, softmax probability, ReST, segmentation masks,
any callable.

A target maps the model's output to one scalar utility per sample (B,). Classifier targets read logits
``y`` (B, C); each sample has its own class index, by default the predicted class (argmax of the logits).
:class:`Segmentation` reads per-pixel scores (B, C, H, W) and sums class ``c``'s scores over a mask. A model
that returns a dict (torchvision's segmentation models: ``{"out": ..., "aux": ...}``) is read through
``key=``. All targets are row-wise: sample b's utility depends only on row b, so one batched backward pass
gives every per-sample gradient.

ReST (arXiv 2501.06261, grad-cam's ``ClassifierOutputReST``) is ``y_c − CE(y, c) = y_c + log_softmax(y)_c``,
computed per row (some grad-cam releases subtracted the batch-MEAN cross-entropy in the batched branch, which
couples the samples; lumos never does).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import torch

from lumos.core.errors import LumosError, bad_param
from lumos.core.registry import Registry

__all__ = ["Target", "Logit", "Softmax", "LogSoftmax", "ReST", "Segmentation", "resolve_classes", "TargetSpec",
           "make_target", "TARGETS", "get_target", "output_batch_size", "split_rows"]

ClassSpec = Union[int, Sequence[int], torch.Tensor, None]


def resolve_classes(classes: ClassSpec, logits: torch.Tensor, owner: str = "target") -> torch.Tensor:
    """Class index per sample as a long tensor (B,) on the logits' device; ``None`` → predicted class.

    Args:
        classes: ``None``, one int for every sample, or B ints (list or tensor).
        logits: (B, C) model output.
    """
    b, c = logits.shape[:2]
    if classes is None:
        return logits.detach().argmax(dim=1)
    if isinstance(classes, bool):
        raise bad_param("classes", "an int, B ints or None", classes, owner=owner, type_error=True)
    if isinstance(classes, int):
        idx = torch.full((b,), int(classes), dtype=torch.long, device=logits.device)
    else:
        try:
            idx = torch.as_tensor(classes, device=logits.device)
        except (TypeError, ValueError, RuntimeError):
            raise bad_param("classes", "an int, B ints or None", classes, owner=owner, type_error=True) from None
        if idx.dtype.is_floating_point or idx.dtype == torch.bool:
            raise bad_param("classes", "integer class indices", f"dtype {idx.dtype}", owner=owner, type_error=True)
        idx = idx.long().reshape(-1)
        if idx.numel() == 1 and b != 1:
            idx = idx.expand(b)
        if idx.numel() != b:
            raise bad_param("classes", f"one class index per sample ({b})", f"{idx.numel()} indices", owner=owner)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= c):
        raise bad_param("classes", f"indices in [0, {c - 1}] (the model has {c} outputs)",
                        idx.tolist(), owner=owner)
    return idx


def _describe(output: Any) -> str:
    if isinstance(output, torch.Tensor):
        return f"a tensor of shape {tuple(output.shape)}"
    if isinstance(output, Mapping):
        return f"a dict with keys {list(output)}"
    return type(output).__name__


def output_batch_size(output: Any) -> int | None:
    """Samples in a model output: a tensor (B, ...), a dict of such tensors, or a list/tuple of B per-sample items;
    None when the output has none of these forms (or its tensors disagree)."""
    if isinstance(output, torch.Tensor):
        return int(output.shape[0]) if output.dim() >= 1 else None
    if isinstance(output, Mapping):
        sizes = {output_batch_size(v) for v in output.values() if isinstance(v, torch.Tensor)}
        return sizes.pop() if len(sizes) == 1 and None not in sizes else None
    if isinstance(output, (list, tuple)):
        return len(output)
    return None


def split_rows(output: Any) -> list[Any]:
    """One model output per sample: tensor rows ``output[b]``, dicts ``{k: v[b]}``, or the items of a list/tuple."""
    if isinstance(output, torch.Tensor):
        return list(output)
    if isinstance(output, Mapping):
        n = output_batch_size(output)
        if n is None:
            raise bad_param("model output", "a dict of tensors with one leading batch axis", _describe(output))
        return [{k: (v[b] if isinstance(v, torch.Tensor) else v) for k, v in output.items()} for b in range(n)]
    return list(output)


class Target:
    """Base utility: ``target(logits) -> (B,)`` with per-sample ``classes`` (default: predicted class).

    Args:
        classes: None (each sample's predicted class), one int for every sample, or B ints.
        key: for models that return a dict, the entry holding the scores (e.g. ``"out"``).

    Subclasses implement :meth:`score`. After a call, ``classes_`` holds the indices used (B,).
    """

    #: axes of one sample's scores: (C,) for classifiers; (C, H, W) for :class:`Segmentation`
    sample_dims: int = 1
    #: whether ``classes`` picks what is explained (False for wrapped callables)
    takes_classes: bool = True

    def __init__(self, classes: ClassSpec = None, *, key: str | None = None) -> None:
        self.classes = classes
        self.key = key
        self.classes_: torch.Tensor | None = None

    def mirrored(self) -> Target:
        """The target for the horizontally flipped input (``aug_smooth``'s flipped views): itself, unless it
        names pixels (:class:`Segmentation` flips its mask)."""
        return self

    def select(self, output: Any) -> torch.Tensor:
        """The score tensor this target reads from a model output (the ``key`` entry of a dict)."""
        owner = type(self).__name__
        if isinstance(output, Mapping):
            if self.key is None or self.key not in output:
                got = "no key" if self.key is None else f"key={self.key!r}"
                raise bad_param("key", f"the dict entry holding the scores, one of {list(output)}", got, owner=owner,
                                fix=f"e.g. {owner}(..., key={next(iter(output), 'out')!r}) for a model returning a dict.")
            output = output[self.key]
        if not isinstance(output, torch.Tensor):
            raise bad_param("model output", "a tensor of scores (or a dict of them, with key=)", _describe(output),
                            owner=owner, fix="Pass a callable target that reduces your model's output to one score.")
        return output

    def __call__(self, output: Any) -> torch.Tensor:
        """Utility per sample: batched scores (B, C) → (B,); one sample's scores (C,) → a scalar (grad-cam style)."""
        y = self.select(output)
        if y.dim() == self.sample_dims:
            return self(y[None])[0]
        if y.dim() != self.sample_dims + 1:
            want = "(B, C) class scores" if self.sample_dims == 1 else "(B, C, H, W) per-pixel class scores"
            fix = ("The model returns per-pixel scores: pass targets=Segmentation(classes, mask) or a callable that "
                   "reduces them to one score per sample." if y.dim() > 2 and self.sample_dims == 1 else
                   "Pick the target for your model's output, or pass a callable returning one score per sample.")
            raise bad_param("model output", want, f"shape {tuple(y.shape)}", owner=type(self).__name__, fix=fix)
        idx = resolve_classes(self.classes, y, owner=type(self).__name__)
        self.classes_ = idx
        return self.score(y, idx)

    def score(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Scores (B, C, ...) and classes (B,) long → utility (B,)."""
        raise NotImplementedError

    def row_target(self, b: int) -> Callable[[Any], torch.Tensor]:
        """Sample ``b``'s utility applied to any batch of outputs (N, C, ...) → (N,) (used by ScoreCAM)."""
        if self.classes_ is None:
            raise LumosError(f"{type(self).__name__} has not been called yet; call it on the logits first.")
        idx = self.classes_[b]

        def utility(output: Any) -> torch.Tensor:
            y = self.select(output)
            return self.score(y, idx.expand(y.shape[0]))

        return utility

    def __repr__(self) -> str:
        key = "" if self.key is None else f", key={self.key!r}"
        return f"{type(self).__name__}(classes={self.classes!r}{key})"


def _pick(t: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    return t.gather(1, classes[:, None]).squeeze(1)


class Logit(Target):
    """Raw logit ``y_c`` (grad-cam's ``ClassifierOutputTarget``)."""

    def score(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return _pick(logits, classes)


class Softmax(Target):
    """Softmax probability ``p_c`` (grad-cam's ``ClassifierOutputSoftmaxTarget``); used by the metrics."""

    def score(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return _pick(torch.softmax(logits, dim=1), classes)


class LogSoftmax(Target):
    """Log-probability ``log p_c = −CE(y, c)``."""

    def score(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return _pick(torch.log_softmax(logits, dim=1), classes)


class ReST(Target):
    """ReST utility ``y_c + log_softmax(y)_c = 2·y_c − logsumexp(y)``, per row (arXiv 2501.06261 §3).

    Gradient w.r.t. the logits ``2·e_c − p``; Hessian ``−(diag(p) − p pᵀ)`` — the curvature that makes
    ShapleyCAM differ from GradCAM on networks with piecewise-linear heads.
    """

    def score(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return _pick(logits, classes) + _pick(torch.log_softmax(logits, dim=1), classes)


class Segmentation(Target):
    """Sum of class ``c``'s per-pixel scores over a mask: Σ_hw y[b, c_b] · mask (grad-cam's
    ``SemanticSegmentationTarget``), for models returning (B, C, H, W) (or a dict of them, with ``key``).

    Args:
        classes: the class explained, one int for every sample or B ints (required: a segmentation has no
            single predicted class).
        mask: which pixels count: None (all), (H, W) or (B, H, W); bool or float (weights), tensor or array.
        key: the dict entry holding the scores for models returning a dict (torchvision: ``"out"``).
    """

    sample_dims = 3

    def __init__(self, classes: ClassSpec, mask: Any = None, *, key: str | None = None) -> None:
        if classes is None:
            raise bad_param("classes", "the class to explain (an int or B ints)", None, owner="Segmentation",
                            fix="A segmentation has no single predicted class; name the class, e.g. Segmentation(3).")
        super().__init__(classes, key=key)
        if mask is not None:
            mask = torch.as_tensor(mask)
            if mask.dim() not in (2, 3) or mask.is_complex():
                raise bad_param("mask", "an (H, W) or (B, H, W) array of pixel weights", f"shape {tuple(mask.shape)}",
                                owner="Segmentation")
        self.mask = mask

    @staticmethod
    def _masked_sum(y: torch.Tensor, classes: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        per_pixel = y.gather(1, classes.view(-1, 1, 1, 1).expand(-1, 1, *y.shape[2:])).squeeze(1)  # (B, H, W)
        if mask is None:
            return per_pixel.sum(dim=(1, 2))
        if mask.shape[-2:] != per_pixel.shape[-2:] or (mask.dim() == 3 and mask.shape[0] != per_pixel.shape[0]):
            raise bad_param("mask", f"shape {tuple(per_pixel.shape[-2:])} or {tuple(per_pixel.shape)} (the output's)",
                            f"shape {tuple(mask.shape)}", owner="Segmentation")
        return (per_pixel * mask.to(device=y.device, dtype=y.dtype)).sum(dim=(1, 2))

    def score(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return self._masked_sum(logits, classes, self.mask)

    def mirrored(self) -> Segmentation:
        """A copy whose mask is flipped left-right, so a flipped view still explains the same pixels (grad-cam's
        ``aug_smooth`` keeps the mask and explains the mirror-image region in half of its views)."""
        out = copy.copy(self)
        out.mask = None if self.mask is None else self.mask.flip(-1)
        return out

    def row_target(self, b: int) -> Callable[[Any], torch.Tensor]:
        if self.classes_ is None:
            raise LumosError("Segmentation has not been called yet; call it on the model output first.")
        idx = self.classes_[b]
        mask = self.mask[b] if self.mask is not None and self.mask.dim() == 3 else self.mask

        def utility(output: Any) -> torch.Tensor:
            y = self.select(output)
            return self._masked_sum(y, idx.expand(y.shape[0]), mask)

        return utility


class _PerSample(Target):
    """grad-cam style: one target per sample (``targets=[ReST(c) for c in classes]``), each called on its own
    row ``logits[b]`` (C,) → scalar: a lumos :class:`Target` or any callable (grad-cam's target objects).
    When every element is a lumos Target, ``classes_`` collects their classes."""

    takes_classes = False

    def __init__(self, fns: Sequence[Callable[[torch.Tensor], torch.Tensor]]) -> None:
        super().__init__(None)
        self.fns = list(fns)

    def __call__(self, logits: Any) -> torch.Tensor:
        rows = split_rows(logits)
        if len(self.fns) != len(rows):
            raise bad_param("targets", f"one target per sample ({len(rows)})", f"{len(self.fns)} targets")
        scores = []
        for b, (fn, row) in enumerate(zip(self.fns, rows)):
            out = fn(row)
            if not isinstance(out, torch.Tensor) or out.numel() != 1:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise bad_param(f"targets[{b}]", "a callable returning one scalar for the sample's 1-D output", got,
                                fix="Return a 0-d tensor, e.g. lambda y: y[c].")
            scores.append(out.reshape(()))
        classes = [fn.classes_ for fn in self.fns if isinstance(fn, Target) and fn.classes_ is not None]
        self.classes_ = torch.cat(classes) if len(classes) == len(self.fns) else None
        return torch.stack(scores)

    def row_target(self, b: int) -> Callable[[Any], torch.Tensor]:
        fn = self.fns[b]
        return lambda logits: torch.stack([fn(row).reshape(()) for row in split_rows(logits)])


class _Callable(Target):
    """Any batch callable ``fn(logits) -> (B,)``."""

    takes_classes = False

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__(None)
        self.fn = fn

    def __call__(self, logits: Any) -> torch.Tensor:
        out = self.fn(logits)
        n = output_batch_size(logits)
        if not isinstance(out, torch.Tensor) or out.shape != (n,):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise bad_param("targets", f"a callable returning one score per sample, shape ({n},)",
                            got, fix="Reduce your utility to one scalar per sample.")
        self.classes_ = None
        return out

    def row_target(self, b: int) -> Callable[[Any], torch.Tensor]:
        raise LumosError("A batch callable target cannot be applied to one sample's perturbed copies "
                         "(ScoreCAM); pass class indices, a Target, or one callable per sample.")


#: CLI / evaluation names → target classes (the one list every consumer reads).
TARGETS: Registry[type[Target]] = Registry("CAM target", param="target",
                                           expects=lambda c: isinstance(c, type) and issubclass(c, Target),
                                           expects_text="a Target subclass")
TARGETS.register("rest", ReST)
TARGETS.register("logit", Logit)
TARGETS.register("softmax", Softmax)
TARGETS.register("logsoftmax", LogSoftmax)


def get_target(name: str) -> type[Target]:
    """Target class by name (one of :data:`TARGETS`)."""
    return TARGETS.get(name)


TargetSpec = Union[None, int, Sequence[int], torch.Tensor, Target, Callable, Sequence[Callable]]


def make_target(targets: TargetSpec, default: type[Target]) -> Target:
    """Turn the ``targets`` argument of an explainer into one batched :class:`Target`.

    * ``None`` → ``default()`` on the predicted class (each method's ``default_target``: the raw logit, or ReST
      for ShapleyCAM);
    * an int, B ints or a (B,) long tensor → ``default(classes)``;
    * a :class:`Target` → itself;
    * a sequence of per-sample callables (e.g. grad-cam's target objects) → each applied to its row;
    * any other callable → ``fn(logits) -> (B,)``.
    """
    if targets is None or isinstance(targets, (int, torch.Tensor)) and not isinstance(targets, bool):
        return default(targets)
    if isinstance(targets, Target):
        return targets
    if isinstance(targets, Sequence) and not isinstance(targets, str):
        items = list(targets)
        ints = [t for t in items if isinstance(t, int) and not isinstance(t, bool)]
        if items and len(ints) == len(items):
            return default(ints)
        fns = [t for t in items if callable(t)]
        if items and len(fns) == len(items):
            return _PerSample(fns)
    elif callable(targets):
        return _Callable(targets)
    raise bad_param("targets", "None, class indices, a Target, one callable per sample, or a batch callable",
                    targets, type_error=True, fix="e.g. targets=ReST([3, 7]) or targets=[3, 7].")

"""Utilities (targets) explained by the CAM methods: raw logit, softmax probability, ReST, any callable.

A target maps the model's logits ``y`` (B, C) to one scalar utility per sample (B,). Each sample has its
own class index; the default is the predicted class (argmax of the logits). All targets are row-wise:
sample b's utility depends only on row b, so one batched backward pass gives every per-sample gradient.

ReST (arXiv 2501.06261, grad-cam's ``ClassifierOutputReST``) is ``y_c − CE(y, c) = y_c + log_softmax(y)_c``,
computed per row. grad-cam's 2-D branch subtracts the batch-MEAN cross-entropy instead, which couples the
samples; lumos never does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Union

import torch

from lumos.core.errors import LumosError, bad_param
from lumos.core.registry import Registry

__all__ = ["Target", "Logit", "Softmax", "LogSoftmax", "ReST", "resolve_classes", "TargetSpec", "make_target", "TARGETS",
           "get_target"]

ClassSpec = Union[int, Sequence[int], torch.Tensor, None]


def resolve_classes(classes: ClassSpec, logits: torch.Tensor, owner: str = "target") -> torch.Tensor:
    """Class index per sample as a long tensor (B,) on the logits' device; ``None`` → predicted class.

    Args:
        classes: ``None``, one int for every sample, or B ints (list or tensor).
        logits: (B, C) model output.
    """
    b, c = logits.shape
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


class Target:
    """Base utility: ``target(logits) -> (B,)`` with per-sample ``classes`` (default: predicted class).

    Subclasses implement :meth:`score`. After a call, ``classes_`` holds the indices used (B,).
    """

    def __init__(self, classes: ClassSpec = None) -> None:
        self.classes = classes
        self.classes_: torch.Tensor | None = None

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """Utility per sample. logits: (B, C) → (B,); one sample's logits (C,) → a scalar (grad-cam style)."""
        if isinstance(logits, torch.Tensor) and logits.dim() == 1:
            return self(logits[None])[0]
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise bad_param("logits", "a (B, C) or (C,) tensor of class scores", shape, owner=type(self).__name__,
                            fix="Explain a classifier, or pass a callable target that returns one score per sample.")
        idx = resolve_classes(self.classes, logits, owner=type(self).__name__)
        self.classes_ = idx
        return self.score(logits, idx)

    def score(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """logits (B, C), classes (B,) long → utility (B,)."""
        raise NotImplementedError

    def row_target(self, b: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """Sample ``b``'s utility applied to any batch of logits (N, C) → (N,) (used by ScoreCAM)."""
        if self.classes_ is None:
            raise LumosError(f"{type(self).__name__} has not been called yet; call it on the logits first.")
        idx = self.classes_[b]
        return lambda logits: self.score(logits, idx.expand(logits.shape[0]))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(classes={self.classes!r})"


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


class _PerSample(Target):
    """grad-cam style: one target per sample (``targets=[ReST(c) for c in classes]``), each called on its own
    row ``logits[b]`` (C,) → scalar: a lumos :class:`Target` or any callable (grad-cam's target objects).
    When every element is a lumos Target, ``classes_`` collects their classes."""

    def __init__(self, fns: Sequence[Callable[[torch.Tensor], torch.Tensor]]) -> None:
        super().__init__(None)
        self.fns = list(fns)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if len(self.fns) != logits.shape[0]:
            raise bad_param("targets", f"one target per sample ({logits.shape[0]})", f"{len(self.fns)} targets")
        scores = []
        for b, (fn, row) in enumerate(zip(self.fns, logits)):
            out = fn(row)
            if not isinstance(out, torch.Tensor) or out.numel() != 1:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise bad_param(f"targets[{b}]", "a callable returning one scalar for the sample's 1-D output", got,
                                fix="Return a 0-d tensor, e.g. lambda y: y[c].")
            scores.append(out.reshape(()))
        targets = [fn for fn in self.fns if isinstance(fn, Target)]
        self.classes_ = (torch.cat([t.classes_ for t in targets]) if len(targets) == len(self.fns)
                         and all(t.classes_ is not None for t in targets) else None)
        return torch.stack(scores)

    def row_target(self, b: int) -> Callable[[torch.Tensor], torch.Tensor]:
        fn = self.fns[b]
        return lambda logits: torch.stack([fn(row).reshape(()) for row in logits])


class _Callable(Target):
    """Any batch callable ``fn(logits) -> (B,)``."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__(None)
        self.fn = fn

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        out = self.fn(logits)
        if not isinstance(out, torch.Tensor) or out.shape != (logits.shape[0],):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise bad_param("targets", f"a callable returning one score per sample, shape ({logits.shape[0]},)",
                            got, fix="Reduce your utility to one scalar per sample.")
        self.classes_ = None
        return out

    def row_target(self, b: int) -> Callable[[torch.Tensor], torch.Tensor]:
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

    * ``None`` → ``default()`` on the predicted class;
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
        if items and all(isinstance(t, int) and not isinstance(t, bool) for t in items):
            return default(items)
        if items and all(callable(t) for t in items):
            return _PerSample(items)
    elif callable(targets):
        return _Callable(targets)
    raise bad_param("targets", "None, class indices, a Target, one callable per sample, or a batch callable",
                    targets, type_error=True, fix="e.g. targets=ReST([3, 7]) or targets=[3, 7].")

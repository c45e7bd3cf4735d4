"""Explain a batch of inputs with several CAM methods: the library side of ``lumos explain``.

The explained class of each input is chosen once: the first method's own forward pass resolves it (the predicted
class, unless ``classes`` fixes it) and every later method explains the same classes, so no extra forward pass is
run and all methods answer the same question. The choice is returned with the maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lumos.core.errors import LumosError, bad_param
from lumos.core.progress import track
from lumos.core.validation import check_positive_int, check_tensor
from lumos.explain import get_method
from lumos.explain.base import LayerSpec
from lumos.explain.targets import ClassSpec, get_target

__all__ = ["Explanation", "explain_inputs"]


@dataclass
class Explanation:
    """One method's maps for N inputs.

    Attributes:
        method: the method's registered name.
        cams: (N, H, W) maps in [0, 1], on the CPU.
        classes: (N,) long, the explained class of each input (the same for every method of one call).
        probabilities: (N,) float, the softmax probability of that class.
    """

    method: str
    cams: torch.Tensor
    classes: torch.Tensor
    probabilities: torch.Tensor


def explain_inputs(model: nn.Module, target_layers: LayerSpec, x: torch.Tensor, methods: Sequence[str], *,
                   target: str = "rest", classes: ClassSpec = None, batch_size: int = 16
                   ) -> dict[str, Explanation]:
    """Maps of every method in ``methods`` (names of :data:`lumos.explain.METHODS`) for the inputs ``x`` (N, ...).

    Args:
        model: a classifier returning logits (B, C).
        target_layers: the layers explained (modules or dotted names).
        x: (N, C, H, W) normalised inputs, run ``batch_size`` at a time.
        methods: method names, in order.
        target: the utility explained (a name of :data:`lumos.explain.targets.TARGETS`).
        classes: the class to explain (an int or N ints); None = each input's predicted class, chosen once.
        batch_size: inputs per forward pass.

    Returns:
        method name → :class:`Explanation`.
    """
    owner = "explain_inputs"
    check_tensor(x, "x", owner=owner)
    check_positive_int(batch_size, "batch_size", owner=owner)
    target_cls = get_target(target)
    method_cls = [get_method(m) for m in methods]
    starts = range(0, x.shape[0], batch_size)
    chosen: list[ClassSpec] = [classes] * len(starts)  # per batch; the first method's choice for the later ones
    if classes is not None and not isinstance(classes, int):
        idx = torch.as_tensor(classes).long().reshape(-1)
        if idx.numel() != x.shape[0]:
            raise bad_param("classes", f"an int or one class per input ({x.shape[0]})", f"{idx.numel()} classes",
                            owner=owner)
        chosen = [idx[i:i + batch_size] for i in starts]
    out: dict[str, Explanation] = {}
    for name, cls in zip(methods, method_cls):
        cams, picked, probs = [], [], []
        with cls(model, target_layers) as method:
            for k, i in enumerate(track(starts, f"explain {name}")):
                cams.append(method(x[i:i + batch_size], targets=target_cls(chosen[k])).cpu())
                if method.classes_ is None:
                    raise LumosError(f"Method '{name}' with target '{target}' recorded no explained classes "
                                     "(its target does not pick a class).")
                c = method.classes_.cpu()
                chosen[k] = c
                picked.append(c)
                p = torch.softmax(method.outputs_.float(), 1).cpu()
                probs.append(p.gather(1, c[:, None]).squeeze(1))
        out[name] = Explanation(name, torch.cat(cams), torch.cat(picked), torch.cat(probs))
    return out

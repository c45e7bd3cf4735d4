"""The ShapleyCAM paper's faithfulness metrics, exactly as its code computes them (SC ``metrics/ADCC.py``).

Y = softmax probability of the explained class c on x; masks multiply the NORMALISED input, so removed
pixels take the dataset-mean colour. With x_add = x ⊙ cam and x_del = x ⊙ (1 − cam):

* AD (Average Drop, ↓)        max(0, Y − O_add) / Y
* IC (Increase in Confidence, ↑)   [O_add > Y]  (strict)
* ADD (Average Drop in Deletion, ↑) max(0, Y − O_del) / Y
* Com (Complexity, ↓)         Σ|cam| / (H·W)
* Coh (Coherency, ↑)          (Pearson(cam, cam′) + 1) / 2, cam′ = the same method and target on x_add;
                              0 when either map is constant or non-finite
* ADCC (↑)                    3 / (1/Coh + 1/(1 − Com) + 1/(1 − AD)) from DATASET MEANS of Coh, Com, AD
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from lumos.core.errors import bad_param
from lumos.core.validation import check_tensor

__all__ = ["complexity", "coherency", "pearson_rows", "adcc", "faithfulness", "FaithfulnessMeter",
           "class_probability", "FAITHFULNESS_KEYS"]

FAITHFULNESS_KEYS = ("ad", "ic", "add", "coh", "com")


def _check_cams(cams: torch.Tensor, name: str = "cams") -> torch.Tensor:
    return check_tensor(cams, name, ndim=3, owner="lumos.explain.metrics")


def complexity(cams: torch.Tensor) -> torch.Tensor:
    """Com per image: L1 norm / (H·W). cams (B, H, W) → (B,)."""
    cams = _check_cams(cams)
    return cams.abs().sum(dim=(1, 2)) / (cams.shape[-1] * cams.shape[-2])


def pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each pair of flattened rows, in float64; NaN where a row is constant."""
    a = a.flatten(1).double()
    b = b.flatten(1).double()
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def coherency(cams: torch.Tensor, cams_again: torch.Tensor) -> torch.Tensor:
    """Coh per image: (Pearson + 1) / 2, and 0 where a map is constant or non-finite. (B, H, W) ×2 → (B,)."""
    _check_cams(cams)
    _check_cams(cams_again, "cams_again")
    bad = ~(torch.isfinite(cams).flatten(1).all(1) & torch.isfinite(cams_again).flatten(1).all(1))
    bad |= (cams.flatten(1).double().std(1) == 0) | (cams_again.flatten(1).double().std(1) == 0)
    r = pearson_rows(torch.nan_to_num(cams), torch.nan_to_num(cams_again))
    return torch.where(bad, torch.zeros_like(r), (r + 1) / 2)


def adcc(coh: float, com: float, ad: float) -> float:
    """ADCC = 3 / (1/Coh + 1/(1 − Com) + 1/(1 − AD)) (Poppi et al. 2021), from dataset means; 0 if any term is 0."""
    if coh <= 0 or com >= 1 or ad >= 1:
        return 0.0
    return 3.0 / (1.0 / coh + 1.0 / (1.0 - com) + 1.0 / (1.0 - ad))


@torch.no_grad()
def class_probability(model: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """softmax(model(x))[b, classes[b]] → (B,)."""
    p = torch.softmax(model(x), dim=1)
    return p.gather(1, classes[:, None].to(p.device)).squeeze(1)


def faithfulness(model: nn.Module, x: torch.Tensor, cams: torch.Tensor, classes: torch.Tensor,
                 explain: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Per-image AD, IC, ADD, Com and (with ``explain``) Coh for one batch.

    Args:
        model: the classifier (eval mode).
        x: normalised inputs (B, C, H, W).
        cams: maps in [0, 1] at input size (B, H, W).
        classes: explained classes (B,) — the predicted class in the paper's protocol.
        explain: ``x_add -> cams′`` — the same method with the same target; omit to skip coherency.

    Returns:
        dict of (B,) float64 tensors on CPU: "ad", "ic", "add", "com" and, with ``explain``, "coh".
    """
    check_tensor(x, "x", ndim=4, owner="faithfulness")
    _check_cams(cams)
    if cams.shape[0] != x.shape[0] or cams.shape[-2:] != x.shape[-2:]:
        raise bad_param("cams", f"maps of shape ({x.shape[0]}, {x.shape[2]}, {x.shape[3]}) matching x",
                        f"shape {tuple(cams.shape)}", owner="faithfulness")
    cams = cams.to(x.device, x.dtype)
    classes = classes.to(x.device)
    y = class_probability(model, x, classes)
    x_add = x * cams[:, None]
    x_del = x * (1 - cams[:, None])
    o_add = class_probability(model, x_add, classes)
    o_del = class_probability(model, x_del, classes)
    out = {
        "ad": (torch.clamp(y - o_add, min=0) / y),
        "ic": (o_add > y).to(y.dtype),
        "add": (torch.clamp(y - o_del, min=0) / y),
        "com": complexity(cams),
    }
    if explain is not None:
        out["coh"] = coherency(cams, explain(x_add).to(cams.device))
    return {k: v.detach().double().cpu() for k, v in out.items()}


@dataclass
class FaithfulnessMeter:
    """Accumulates per-image metrics over a dataset; :meth:`summary` gives means and ADCC from the means."""

    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0

    def update(self, batch: dict[str, torch.Tensor]) -> None:
        n = {int(v.numel()) for v in batch.values()}
        if len(n) != 1:
            raise bad_param("batch", "per-image metrics of one batch size", sorted(n))
        for k, v in batch.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.double().sum())
        self.count += n.pop()

    def summary(self) -> dict[str, float]:
        """Dataset means of every metric, plus "adcc" when Coh, Com and AD are present."""
        if self.count == 0:
            return {}
        means = {k: v / self.count for k, v in self.sums.items()}
        if {"coh", "com", "ad"} <= means.keys():
            means["adcc"] = adcc(means["coh"], means["com"], means["ad"])
        means["n"] = self.count
        return means

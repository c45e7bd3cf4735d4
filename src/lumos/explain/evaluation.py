"""The evaluation harness: every method over a dataset, the paper's protocol, one summary row per method.

Protocol (ShapleyCAM's ``ADCC_imagenet_gist.py``): explain the PREDICTED class; every method uses the same
utility (ReST by default, ``target=`` to change it); metrics use the softmax probability; coherency reruns
the method with the same target on x ⊙ cam. Optionally deletion / insertion AUC and, when boxes are given,
the energy-based and classic pointing games.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lumos.core.progress import track
from lumos.explain import get_method
from lumos.explain.base import LayerSpec, model_device
from lumos.explain.metrics import (
    FaithfulnessMeter,
    deletion_auc,
    energy_pointing_game,
    faithfulness,
    insertion_auc,
    pointing_game,
)
from lumos.explain.targets import TARGETS

__all__ = ["EvalConfig", "evaluate_methods", "Batch"]

#: (normalised images (B, C, H, W), boxes (B, 4) or None)
Batch = tuple[torch.Tensor, "torch.Tensor | None"]


@dataclass
class EvalConfig:
    """Options of :func:`evaluate_methods`."""

    methods: Sequence[str] = ("gradcam", "hirescam", "shapleycam")
    target: str = "rest"
    coherency: bool = True
    auc_steps: int = 0  # 0: skip deletion/insertion AUC
    keep_examples: int = 0  # keep the first N cams per method (for overlays)


def evaluate_methods(model: nn.Module, target_layers: LayerSpec, batches: Iterable[Batch], cfg: EvalConfig,
                     total: int | None = None, description: str = "explain-eval") -> tuple[list[dict], dict]:
    """Run every method of ``cfg`` on every batch; returns (summary rows, {method: first cams (N, H, W)})."""
    from lumos.core.validation import check_choice

    check_choice(cfg.target, "target", list(TARGETS), owner="evaluate_methods")
    target_cls = TARGETS[cfg.target]
    explainers = {m: get_method(m)(model, target_layers) for m in cfg.methods}
    meters = {m: FaithfulnessMeter() for m in cfg.methods}
    seconds = dict.fromkeys(cfg.methods, 0.0)
    examples: dict[str, list[torch.Tensor]] = {m: [] for m in cfg.methods}
    kept = 0
    dev = model_device(model)
    model.eval()
    for x, boxes in track(batches, description, total=total):
        x = x.to(dev)
        with torch.no_grad():
            classes = model(x).argmax(dim=1)
        for name, method in explainers.items():
            t0 = time.perf_counter()
            cams = method(x, targets=target_cls(classes))
            seconds[name] += time.perf_counter() - t0
            row = faithfulness(model, x, cams, classes,
                               explain=(lambda xa, m=method, c=classes: m(xa, targets=target_cls(c))) if cfg.coherency else None)
            if cfg.auc_steps:
                row["deletion_auc"] = deletion_auc(model, x, cams, classes, steps=cfg.auc_steps)
                row["insertion_auc"] = insertion_auc(model, x, cams, classes, steps=cfg.auc_steps)
            if boxes is not None:
                row["energy_pg"] = energy_pointing_game(cams, boxes)
                row["pointing_game"] = pointing_game(cams, boxes)
            meters[name].update(row)
            if kept < cfg.keep_examples:
                examples[name].append(cams[: cfg.keep_examples - kept].cpu())
        kept += x.shape[0]
    rows = []
    for name, meter in meters.items():
        s = meter.summary()
        rows.append({"method": name, **{k: s[k] for k in ("ad", "coh", "com", "adcc", "ic", "add") if k in s},
                     **{k: s[k] for k in ("deletion_auc", "insertion_auc", "energy_pg", "pointing_game") if k in s},
                     "ms_per_image": 1000 * seconds[name] / max(meter.count, 1), "n": meter.count})
    return rows, {m: torch.cat(v) for m, v in examples.items() if v}

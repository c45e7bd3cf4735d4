"""Train the built-in models on the synthetic shapes (CPU, about a minute), cached as safetensors.

The cache key is a hash of everything that determines the weights (architecture, data size and seed,
epochs, learning rate), so a cached model is reused only when it would be retrained identically.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lumos.core.errors import LumosError
from lumos.core.io import atomic_write_json, load_tensors, read_json, save_tensors
from lumos.core.progress import track
from lumos.core.seed import seed_everything
from lumos.core.validation import NONNEG, NONNEG_INT, POSITIVE, POSITIVE_INT, Options, Problems, constraint
from lumos.data.synthetic import SyntheticShapes, synthetic_splits
from lumos.vision.models import TARGET_LAYERS, VisionConfig, build_builtin

__all__ = ["TrainConfig", "TrainedModel", "train_builtin", "load_or_train_builtin", "default_train_config"]


def default_train_config(kind: str, quick: bool = False, seed: int = 0) -> TrainConfig:
    """The built-in recipe per model kind; ``quick`` is the seconds-long smoke-test size."""
    if quick:
        return TrainConfig(kind=kind, n_train=64, n_test=16, epochs=1, batch_size=32, width=8, seed=seed)
    if kind == "vit":
        return TrainConfig(kind="vit", n_train=2000, width=48, epochs=10, lr=3e-3, seed=seed)
    return TrainConfig(kind=kind, n_train=2000, epochs=8, seed=seed)


@dataclass
class TrainConfig:
    """How a built-in model is trained (defaults: about a minute on 2 CPU cores)."""

    kind: str = field(default="cnn", metadata=constraint(Options(str, tuple(TARGET_LAYERS))))
    n_train: int = field(default=1500, metadata=constraint(POSITIVE_INT))
    n_test: int = field(default=300, metadata=constraint(POSITIVE_INT))
    image_size: int = field(default=32, metadata=constraint(POSITIVE_INT))
    epochs: int = field(default=5, metadata=constraint(POSITIVE_INT))
    batch_size: int = field(default=64, metadata=constraint(POSITIVE_INT))
    lr: float = field(default=4e-3, metadata=constraint(POSITIVE))
    width: int = field(default=16, metadata=constraint(POSITIVE_INT))
    patch_size: int = field(default=8, metadata=constraint(POSITIVE_INT))
    weight_decay: float = field(default=1e-4, metadata=constraint(NONNEG))
    seed: int = field(default=0, metadata=constraint(NONNEG_INT))

    def __post_init__(self) -> None:
        p = Problems("TrainConfig")
        p.fields(self)
        p.raise_if_any()

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class TrainedModel:
    """A trained built-in model with its data statistics and test accuracy."""

    model: nn.Module
    vision: VisionConfig
    train: TrainConfig
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    test_accuracy: float
    path: Path | None = None

    def test_set(self, n: int | None = None) -> SyntheticShapes:
        """The held-out synthetic images (indices after the training ones), normalised like training."""
        t = self.train
        return SyntheticShapes(n or t.n_test, t.image_size, t.seed, offset=t.n_train, mean=self.mean, std=self.std)


def _rgb(values: Iterable[float] | None, what: str) -> tuple[float, float, float]:
    """A per-channel statistic as the (R, G, B) triple :class:`SyntheticShapes` takes; ValueError otherwise."""
    v = () if values is None else tuple(values)
    if len(v) != 3:
        raise ValueError(f"{what} has {len(v)} values, not one per RGB channel")
    return v[0], v[1], v[2]


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)])
    return float((pred == y).float().mean())


def train_builtin(cfg: TrainConfig, progress: bool | None = None) -> TrainedModel:
    """Train a fresh built-in model (AdamW, cosine schedule, random flips) and report its test accuracy.

    ``progress``: None shows a progress bar on a terminal (as :func:`lumos.core.progress.track`), True/False force it.
    """
    seed_everything(cfg.seed)
    train, test = synthetic_splits(cfg.n_train, cfg.n_test, cfg.image_size, cfg.seed)
    vcfg = VisionConfig(kind=cfg.kind, num_classes=len(train.classes), image_size=cfg.image_size,
                        width=cfg.width, patch_size=cfg.patch_size)
    model = build_builtin(vcfg)
    x, y = train.normalized(), train.labels
    steps = cfg.epochs * ((len(x) + cfg.batch_size - 1) // cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    for _ in track(range(cfg.epochs), f"training builtin:{cfg.kind}", disable=None if progress is None else not progress):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            xb = x[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    acc = _accuracy(model, test.normalized(), test.labels)
    return TrainedModel(model, vcfg, cfg, _rgb(train.mean, "mean"), _rgb(train.std, "std"), acc)


def load_or_train_builtin(cfg: TrainConfig, cache_dir: str | os.PathLike[str], progress: bool | None = None) -> TrainedModel:
    """Load ``cache_dir/builtin-<kind>-<key>.safetensors`` if present, else train and save it (atomically)."""
    cache = Path(cache_dir)
    stem = cache / f"builtin-{cfg.kind}-{cfg.key()}"
    weights, meta_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    if weights.is_file() and meta_path.is_file():
        meta: dict[str, Any] = read_json(meta_path)
        try:
            import json

            from lumos.core.io import to_json

            if meta.get("train") not in (None, json.loads(to_json(asdict(cfg)))):
                raise ValueError("it was trained with another configuration")
            vcfg = VisionConfig(**meta["vision"])
            model = build_builtin(vcfg)
            model.load_state_dict(load_tensors(weights))
            mean, std = _rgb(meta["mean"], "mean"), _rgb(meta["std"], "std")
            acc = float(meta["test_accuracy"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            raise LumosError(f"The cached built-in model {weights} does not fit ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:120]}). Delete {weights} and {meta_path.name} to retrain "
                             "it, or pass another --cache.") from None
        model.eval()
        return TrainedModel(model, vcfg, cfg, mean, std, acc, weights)
    trained = train_builtin(cfg, progress)
    save_tensors(weights, trained.model.state_dict())
    atomic_write_json(meta_path, {"vision": trained.vision.to_dict(), "train": asdict(cfg), "mean": trained.mean,
                                  "std": trained.std, "test_accuracy": trained.test_accuracy})
    trained.path = weights
    return trained

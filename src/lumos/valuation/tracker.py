"""``CHGTracker``: CHG Shapley values of a PyTorch classifier's training points while it trains.

The training-callback side of CHG valuation (:class:`~lumos.valuation.CHGValuation` is the scikit-learn style
estimator with a built-in model; both average per-epoch values the same way, through :meth:`CHGTracker.add_epoch`).
Any classifier whose last layer is ``nn.Linear`` can be tracked, in two ways, both ending in ``values_`` (N,)
float64 (higher = more valuable):

(a) one extra no-grad pass per epoch at the current parameters (the paper's protocol; the loader yields
    ``(x, y, index)``, or ``(x, y)`` from a ``DataLoader(ds, shuffle=False)``; any other loader without indices
    is refused, since the rows of its batches cannot be known)::

        tracker = CHGTracker(variant="bias")
        for epoch in range(E):
            tracker.update(model, eval_loader)      # values at θ_e, averaged into tracker.values_
            train_one_epoch(model, train_loader)

(b) in-run, inside the training forward itself (no extra pass; the vectors are taken at the parameters of
    each step rather than at the epoch start)::

        with tracker.watch(model, n_samples=len(ds)) as w:
            for epoch in range(E):
                for x, y, idx in loader:              # e.g. DataLoader(IndexedDataset(ds), shuffle=True)
                    logits = model(x)
                    w.record(logits, y, idx)
                    F.cross_entropy(logits, y).backward(); opt.step(); opt.zero_grad()
                w.end_epoch()

Memory O(N·(C + D) + K·C·D). Under torch.distributed (each rank sees its shard, e.g. with a
DistributedSampler over an :class:`IndexedDataset`) the statistics are all-reduced and every rank ends with
the full ``values_``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
)

from lumos.core.errors import LumosError, bad_param
from lumos.core.progress import track
from lumos.core.validation import check_bool, check_choice, check_positive_int
from lumos.distributed import process_group as dist
from lumos.valuation.features import VARIANTS, CHGFeatures, CHGVector, chg_values_streaming
from lumos.valuation.per_sample import capture_last_layer, ce_logit_grad, check_capture, check_labels

__all__ = ["CHGTracker", "CHGWatcher", "IndexedDataset", "EpochBuffer", "loader_in_dataset_order"]

_OWNER = "CHGTracker"


class IndexedDataset(Dataset):
    """Wrap a dataset of ``(x, y)`` so items are ``(x, y, index)`` (for shuffled or sharded valuation)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[Any, Any, int]:
        x, y = self.dataset[i][:2]
        return x, y, i


class EpochBuffer:
    """Per-sample logits z_i (C) and, for ``"full"``, penultimate features h_i (D) of one epoch, stored at the
    samples' indices in [0, N) in float64 (memory O(N·(C + D))). Losses, logit gradients and the
    factored CHG vectors are computed once per epoch, in float64, in :meth:`values`; per batch only four
    indexed copies run (the in-run hook stays cheap)."""

    def __init__(self, n_samples: int, variant: str, owner: str = _OWNER) -> None:
        self.n, self.variant, self.owner = n_samples, variant, owner
        self.z: torch.Tensor | None = None
        self.h: torch.Tensor | None = None
        self.labels = torch.full((n_samples,), -1, dtype=torch.int64)
        self.seen = torch.zeros(n_samples, dtype=torch.int64)
        self._one = torch.ones(1, dtype=torch.int64)

    def clear(self) -> None:
        """Start a new epoch, keeping the (N, C) and (N, D) storage (no reallocation per epoch)."""
        self.labels.fill_(-1)
        self.seen.zero_()

    def add(self, z: torch.Tensor, h: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> None:
        """Store a checked batch: logits z (B, C), features h (B, D), labels y (B,), sample indices idx (B,)."""
        idx = torch.as_tensor(idx, dtype=torch.int64)
        if len(idx) != len(y):
            raise bad_param("idx", f"{len(y)} indices (one per sample)", f"{len(idx)}", owner=self.owner)
        if len(idx) and idx.device.type == "cpu":  # loader indices are on the host: no device sync
            lo, hi = (int(v) for v in torch.aminmax(idx))
            if lo < 0 or hi >= self.n:
                raise bad_param("idx", f"sample indices in [0, {self.n})", f"[{lo}, {hi}]", owner=self.owner,
                                fix="Pass n_samples = len(dataset) and the dataset's own indices.")
        if self.z is None or self.z.shape[1] != z.shape[1] or self.z.device != z.device:
            dev = z.device  # buffers live on the model's device: no host sync per batch on GPU
            self.z = torch.zeros(self.n, z.shape[1], dtype=torch.float64, device=dev)  # cast on copy
            if self.variant == "full":
                self.h = torch.zeros(self.n, h.shape[1], dtype=torch.float64, device=dev)
            self.labels = self.labels.to(dev)
            self.seen = self.seen.to(dev)
            self._one = self._one.to(dev)
        idx = idx.to(self.z.device, non_blocking=True)
        self.z[idx] = z.detach().to(torch.float64)
        if self.h is not None:
            self.h[idx] = h.detach().to(torch.float64)
        self.labels[idx] = y.detach().to(self.z.device, torch.int64)
        self.seen.index_put_((idx,), self._one.expand(len(idx)), accumulate=True)

    def _logits(self) -> torch.Tensor:
        """The stored logits (N, C); a clear error when no batch was recorded."""
        if self.z is None:
            raise LumosError("No samples were recorded this epoch; call record(...) for each training batch.")
        return self.z

    def features(self, mask: torch.Tensor) -> CHGFeatures:
        """Factored CHG vectors (float64) of the samples in ``mask``; a clear error on NaN/inf."""
        every = bool(mask.all())
        z_all = self._logits()
        z = z_all if every else z_all[mask]
        labels = self.labels if every else self.labels[mask]
        check_labels(labels, z.shape[1], owner=self.owner)  # once per epoch (per batch only for CPU labels)
        loss, g = ce_logit_grad(z, labels)
        u = g.mul_(loss[:, None])
        h = None if self.h is None else (self.h if every else self.h[mask])
        # a row sum is finite iff the row is (one (N,) temporary instead of an (N, D) mask)
        bad = ~torch.isfinite(u.sum(1))
        if h is not None:
            bad |= ~torch.isfinite(h.sum(1))
        if bool(bad.any()):
            raise bad_param("features", "finite losses, logits and penultimate features",
                            f"{int(bad.sum())} samples with NaN/inf", owner=self.owner,
                            fix="The model diverged or the inputs contain NaN; lower the learning rate or clean the data.")
        return CHGFeatures(u, h)

    def values(self, per_class: bool, alpha: CHGVector | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(values (N,), seen mask (N,), labels (N,)) over all processes; unseen samples get 0.
        ``alpha``: the target direction (factored), or None for the (class) mean."""
        n_classes = int(self._logits().shape[1])
        distributed = dist.is_distributed()
        seen = self.seen.clone()
        if distributed:
            dist.all_reduce_sum(seen)
        if int(seen.max()) > 1:
            raise LumosError(
                f"{int((seen > 1).sum())} samples were recorded more than once in one epoch (a padded "
                "DistributedSampler, or repeated indices). Use drop_last=True or a sampler without repeats."
            )
        mine = self.seen > 0
        feats = self.features(mine)
        groups = self.labels[mine] if per_class else None
        n_groups = n_classes if per_class else 1
        reduce = dist.all_reduce_sum if distributed else None
        local = chg_values_streaming(feats, groups, n_groups, alpha=alpha, reduce=reduce)
        out = torch.zeros(self.n, dtype=torch.float64, device=local.device)
        out[mine] = local
        labels = torch.where(mine, self.labels, torch.zeros_like(self.labels))
        if distributed:
            dist.all_reduce_sum(out)
            dist.all_reduce_sum(labels)
        return out.cpu(), (seen > 0).cpu(), labels.cpu()


class CHGWatcher:
    """In-run recorder returned by :meth:`CHGTracker.watch` (a context manager holding a forward hook)."""

    def __init__(self, tracker: CHGTracker, model: nn.Module, n_samples: int) -> None:
        self.tracker, self.model, self.n = tracker, model, n_samples
        self._ctx = capture_last_layer(model, owner=_OWNER)
        self._cap: dict[str, torch.Tensor] = {}
        self._buf = EpochBuffer(n_samples, tracker.variant, owner=_OWNER)
        self._active = False

    def __enter__(self) -> CHGWatcher:
        self._cap = self._ctx.__enter__()
        self._active = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self._active = False
        self._ctx.__exit__(*exc)

    def record(self, logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor | None = None) -> None:
        """Record the batch just forwarded: ``logits`` (B, C) = model output, ``y`` (B,) labels, ``idx`` (B,)
        the batch's sample indices in [0, n_samples) (required: a training loader is shuffled, so the rows a
        batch holds cannot be inferred; ``DataLoader(IndexedDataset(ds), shuffle=True)`` yields them)."""
        if not self._active:
            raise LumosError("CHGWatcher.record() was called outside its watch() block, so the model's forward was "
                             "not captured; record inside `with tracker.watch(model, n_samples) as w:`, right after "
                             "logits = model(x).")
        if idx is None:
            raise bad_param("idx", "the batch's sample indices (B,)", None, owner="CHGWatcher.record",
                            fix="A shuffled loader's batches hold unknown rows: iterate DataLoader(IndexedDataset(ds), "
                                "shuffle=True) and pass record(logits, y, idx).")
        z, h = check_capture(logits, self._cap, y, owner=_OWNER, sync_labels=False)
        self._buf.add(z, h, y, idx)

    def end_epoch(self) -> np.ndarray:
        """Value this epoch's samples, average into ``tracker.values_``; returns this epoch's values (N,)."""
        values = self.tracker.add_epoch(self._buf)
        self._buf.clear()
        return values


def loader_in_dataset_order(loader: Any) -> bool | str:
    """True when ``loader`` yields its dataset's samples in index order 0, 1, 2, … (a ``DataLoader`` over a
    map-style dataset with the default sequential sampler); otherwise a phrase naming why the order is unknown."""
    if not isinstance(loader, DataLoader):
        return f"a {type(loader).__name__} (not a DataLoader reading its dataset in order)"
    if isinstance(loader.dataset, IterableDataset):
        return "a DataLoader over an IterableDataset"
    batch_sampler = loader.batch_sampler
    sampler = batch_sampler.sampler if isinstance(batch_sampler, BatchSampler) else loader.sampler
    if batch_sampler is not None and not isinstance(batch_sampler, BatchSampler):
        return f"a DataLoader with the batch sampler {type(batch_sampler).__name__}"
    if type(sampler) is not SequentialSampler:
        kind = "shuffled DataLoader" if isinstance(sampler, RandomSampler) else f"DataLoader with {type(sampler).__name__}"
        return f"a {kind}"
    return True


class CHGTracker:
    """CHG values of a PyTorch classifier's training points while it trains (the classifier's last layer must
    be ``nn.Linear``), per epoch and averaged over epochs; α = the mean training vector (per class with
    ``per_class``).

    Args:
        variant: ``"bias"`` (logit gradient) or ``"full"`` (bias + weight gradient of the last layer).
        per_class: one game per class instead of one game over all points.
    Attributes (after the first epoch): values_ (N,) float64 mean over the epochs that saw each sample (NaN for
    samples never seen); epoch_values_ list of (N,) arrays; n_epochs_; labels_ (N,).
    """

    def __init__(self, variant: str = "bias", per_class: bool = False) -> None:
        self.variant = check_choice(variant, "variant", VARIANTS, owner=_OWNER)
        self.per_class = check_bool(per_class, "per_class", owner=_OWNER)
        self.reset()

    def reset(self) -> CHGTracker:
        """Forget accumulated epochs (start a new valuation)."""
        self.values_: np.ndarray | None = None
        self.epoch_values_: list[np.ndarray] = []
        self.n_epochs_ = 0
        self.labels_: np.ndarray | None = None
        self._sum = self._count = np.zeros(0)
        return self

    def add_epoch(self, buf: EpochBuffer, alpha: CHGVector | None = None) -> np.ndarray:
        """Value the samples recorded in ``buf`` (``alpha``: the target direction, None = the (class) mean) and
        average them into ``values_``; returns this epoch's values (N,) (NaN for samples it did not see)."""
        if self.n_epochs_ and len(self._sum) != buf.n:
            raise LumosError(f"This CHGTracker averages {self.n_epochs_} epoch(s) of {len(self._sum)} samples, but this "
                             f"epoch has {buf.n}; pass the same dataset (n_samples) every epoch, or call "
                             "tracker.reset() first to start a new valuation.")
        values, seen, labels = buf.values(self.per_class, alpha)
        if not self.n_epochs_:
            self._sum, self._count = np.zeros(buf.n), np.zeros(buf.n)
        v, m = values.numpy(), seen.numpy()
        self._sum[m] += v[m]
        self._count[m] += 1
        self.n_epochs_ += 1
        epoch = np.where(m, v, np.nan)
        self.epoch_values_.append(epoch)
        with np.errstate(invalid="ignore"):
            self.values_ = np.where(self._count > 0, self._sum / np.maximum(self._count, 1), np.nan)
        self.labels_ = labels.numpy()
        return epoch

    def update(self, model: nn.Module, loader: Iterable[Any], n_samples: int | None = None) -> np.ndarray:
        """Value all samples of ``loader`` at the model's current parameters (one no-grad pass, eval mode)
        and average into ``values_``.

        Batches are ``(x, y, idx)`` with ``idx`` (B,) the samples' indices in [0, n_samples) (e.g. a
        ``DataLoader(IndexedDataset(ds), shuffle=True)``), or ``(x, y)`` from a ``DataLoader`` that reads its
        dataset in order (``shuffle=False``, no custom sampler), where row i of the stream is sample i. Batches
        without indices from any other loader (shuffled, a custom sampler, a list of batches) are refused: the
        rows they hold cannot be known. Every epoch of one valuation has the same ``n_samples``.

        Returns this epoch's values (N,) (NaN for samples this epoch did not see).
        """
        if n_samples is None:
            dataset = getattr(loader, "dataset", None)
            n_samples = None if dataset is None else len(dataset)
        if n_samples is None:
            raise bad_param("n_samples", "the dataset size", None, owner=_OWNER, fix="Pass n_samples=len(dataset).")
        check_positive_int(n_samples, "n_samples", owner=_OWNER, fix="Pass the dataset size.")
        if self.n_epochs_ and len(self._sum) != n_samples:  # refuse before the pass, not after it
            raise LumosError(f"This CHGTracker averages {self.n_epochs_} epoch(s) of {len(self._sum)} samples, but "
                             f"this loader has {n_samples}; pass the same dataset every epoch, or call "
                             "tracker.reset() first to start a new valuation.")
        in_order = loader_in_dataset_order(loader)
        buf = EpochBuffer(n_samples, self.variant, owner=_OWNER)
        was_training = model.training
        model.eval()
        pos = 0
        try:
            with capture_last_layer(model, owner=_OWNER) as cap, torch.no_grad():
                for batch in track(loader, "CHG valuation pass"):
                    x, y = batch[0], batch[1]
                    if len(batch) > 2:
                        idx = batch[2]
                    elif in_order is True:
                        idx = torch.arange(pos, pos + len(y))
                    else:
                        raise LumosError(f"CHGTracker.update: batches of (x, y) without sample indices from {in_order}, "
                                         "so the rows each batch holds are unknown; wrap the dataset as "
                                         "IndexedDataset(dataset) so batches are (x, y, index), or use "
                                         "DataLoader(dataset, shuffle=False).")
                    pos += len(y)
                    z, h = check_capture(model(x), cap, y, owner=_OWNER, sync_labels=False)
                    buf.add(z, h, y, idx)
        finally:
            model.train(was_training)
        return self.add_epoch(buf)

    def watch(self, model: nn.Module, n_samples: int) -> CHGWatcher:
        """A context manager recording CHG vectors during the training forward (see the module docstring)."""
        check_positive_int(n_samples, "n_samples", owner=_OWNER, fix="Pass the dataset size.")
        return CHGWatcher(self, model, n_samples)

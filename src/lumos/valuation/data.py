"""Built-in data for valuation: scikit-learn's bundled digits, breast cancer and wine (no download), and
synthetic Gaussian mixtures; embeddings of the built-in synthetic images (penultimate features of the built-in
CNN of ``lumos.vision``); splitting and standardisation; :func:`load_valuation_data`, the data of
``lumos value`` with each training point's row in the user's file (reading: :mod:`lumos.valuation.table`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lumos.core.errors import LumosError, bad_param

__all__ = ["BUILTIN", "load_builtin", "gaussian_mixture", "shape_embeddings", "Split", "make_split", "split_indices",
           "standardize", "ValuationInput", "load_valuation_data"]

BUILTIN = ("digits", "breast_cancer", "wine", "gaussian", "shapes")


def gaussian_mixture(n: int = 10_000, n_features: int = 20, n_classes: int = 10, separation: float = 3.0,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points from ``n_classes`` isotropic unit Gaussians with means drawn at scale ``separation``.

    Returns (X (n, n_features) float64, y (n,) int64), classes balanced up to rounding.
    """
    if n < 2 or n_classes < 2 or n_features < 1:
        raise bad_param("n / n_classes / n_features", "n >= 2, n_classes >= 2, n_features >= 1",
                        (n, n_classes, n_features), owner="gaussian_mixture")
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=separation / np.sqrt(n_features) * 2.0, size=(n_classes, n_features))
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    X = means[y] + rng.normal(size=(n, n_features))
    return X.astype(np.float64), y.astype(np.int64)


def shape_embeddings(n: int = 2000, seed: int = 0, quick: bool = False,
                     cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of the built-in synthetic shape images: the penultimate features (input of the last
    ``nn.Linear``) of the built-in CNN, trained by lumos on images of the same generator (about 15 s on 2 cores,
    cached as safetensors in ``cache_dir`` when given). The ``n`` embedded images are disjoint from the CNN's
    training and test images. Returns (X (n, D) float64, y (n,) int64), 6 classes.
    """
    import torch

    from lumos.data.synthetic import SyntheticShapes
    from lumos.vision.train import default_train_config, load_or_train_builtin, train_builtin

    if not isinstance(n, int) or n < 2:
        raise bad_param("n", "an int >= 2", n, owner="shape_embeddings")
    cfg = default_train_config("cnn", quick=quick, seed=seed)
    trained = load_or_train_builtin(cfg, cache_dir) if cache_dir is not None else train_builtin(cfg)
    model = trained.model.eval()
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    images = SyntheticShapes(n, cfg.image_size, cfg.seed, offset=cfg.n_train + cfg.n_test,
                             mean=trained.mean, std=trained.std)
    feats: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda mod, inp, out: feats.append(inp[0].detach()))
    try:
        with torch.no_grad():
            x = images.normalized()
            for i in range(0, n, 256):
                model(x[i:i + 256])
    finally:
        hook.remove()
    X = torch.cat(feats).double().numpy()
    return X, images.labels.numpy().astype(np.int64)


def load_builtin(name: str, n: int = 10_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of a built-in dataset: digits (1797×64, 10 classes), breast_cancer (569×30, 2), wine (178×13, 3),
    gaussian (``n`` × 20, 10 classes), shapes (min(``n``, 2000) built-in CNN embeddings of synthetic images,
    6 classes; trains the CNN first, about 15 s)."""
    if name == "gaussian":
        return gaussian_mixture(n=n, seed=seed)
    if name == "shapes":
        return shape_embeddings(n=min(n, 2000), seed=seed)
    from sklearn import datasets

    loaders = {"digits": datasets.load_digits, "breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine}
    if name not in loaders:
        raise bad_param("dataset", "one of " + ", ".join(BUILTIN), name, owner="load_builtin")
    X, y = loaders[name](return_X_y=True)
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)


@dataclass
class Split:
    """Train / validation / test arrays (features standardised with training statistics).

    ``train_idx``, ``val_idx``, ``test_idx``: the positions in the X given to :func:`make_split` of each
    split's points (row i of ``X_train`` is row ``train_idx[i]`` of X), or None when the split did not come
    from one array."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    train_idx: np.ndarray | None = None
    val_idx: np.ndarray | None = None
    test_idx: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1


def split_indices(n: int, n_train: int | float, n_val: int | float, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (train, val, test) of a seeded shuffle of ``range(n)``: ``n_train`` and ``n_val`` points
    (counts, or fractions of n when < 1), the rest for test. The split :func:`make_split` makes."""
    for name, v in (("n_train", n_train), ("n_val", n_val)):
        if v >= 1 and v != int(v):
            raise bad_param(name, "a fraction (< 1) or a whole number of points", v, owner="make_split")
    nt = int(round(n_train * n)) if isinstance(n_train, float) and n_train < 1 else int(n_train)
    nv = int(round(n_val * n)) if isinstance(n_val, float) and n_val < 1 else int(n_val)
    if nt < 2 or nv < 1 or nt + nv >= n:
        raise bad_param("n_train / n_val", f"n_train >= 2, n_val >= 1 and n_train + n_val < N = {n}", (nt, nv),
                        owner="make_split", fix="Leave at least one point for the test split.")
    perm = np.random.default_rng(seed).permutation(n)
    return perm[:nt], perm[nt:nt + nv], perm[nt + nv:]


def standardize(X: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """``X`` and ``others`` standardised with the mean and std of ``X`` (constant columns only centred)."""
    X = np.asarray(X, dtype=np.float64)
    mu, sd = X.mean(0), X.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return tuple((np.asarray(a, dtype=np.float64) - mu) / sd for a in (X, *others))


def make_split(X: np.ndarray, y: np.ndarray, n_train: int | float, n_val: int | float, seed: int = 0,
               standardize: bool = True) -> Split:
    """Shuffle and split into train (``n_train``), validation (``n_val``) and test (the rest)
    (:func:`split_indices`). Sizes are counts, or fractions of N when < 1. Features are standardised with the
    training mean and std. The split records each point's position in ``X`` (``train_idx`` ...)."""
    tr, va, te = split_indices(len(X), n_train, n_val, seed)
    X = np.asarray(X, dtype=np.float64)
    if standardize:
        mu, sd = X[tr].mean(0), X[tr].std(0)
        X = (X - mu) / np.where(sd > 1e-12, sd, 1.0)
    y = np.asarray(y, dtype=np.int64)
    return Split(X[tr], y[tr], X[va], y[va], X[te], y[te], tr, va, te)


@dataclass
class ValuationInput:
    """What ``lumos value`` values, with every training point's identity in the user's data.

    Attributes:
        split: train / validation / test, standardised with training statistics (with ``val_data`` the
            validation file serves as both validation and test).
        rows: (N_train,) int64 0-based row in the source of each training point (``X_train[i]`` ↔ ``rows[i]``).
        ids: (N_train,) str ``id_col`` values, or None.  id_col: its name.
        classes: (K,) str label names (``y`` codes index them).  feature_names: encoded feature names.
        notes: every choice made (encodings, imputations, dropped rows), one sentence each.
        description: where the training, validation and test points come from (one sentence).
    """

    split: Split
    rows: np.ndarray
    ids: np.ndarray | None
    id_col: str | None
    classes: np.ndarray
    feature_names: list[str]
    notes: list[str]
    description: str


#: ``lumos value``'s default split of one file: (training, validation) fractions; the rest is the test set.
DEFAULT_SPLIT = (0.6, 0.15)


def _split_sizes(n_train: int | float | None, n_val: int | float | None) -> tuple[int | float, int | float]:
    return (DEFAULT_SPLIT[0] if n_train is None else n_train, DEFAULT_SPLIT[1] if n_val is None else n_val)


def load_valuation_data(data: str, label_col: str = "y", *, val_data: str | None = None, id_col: str | None = None,
                        drop_cols: tuple[str, ...] | list[str] = (), categorical: tuple[str, ...] | list[str] = (),
                        impute: str = "mean", n_train: int | float | None = None, n_val: int | float | None = None,
                        seed: int = 0) -> ValuationInput:
    """Read and encode the data ``lumos value`` values: ``builtin:NAME`` or a CSV / NPZ file
    (:mod:`lumos.valuation.table`: identity, one-hot text columns, imputation).

    Without ``val_data`` the rows are split (``n_train``, ``n_val``: default :data:`DEFAULT_SPLIT`; the rest is test) and
    only the training rows are valued. With ``val_data`` every row of ``data`` is valued, and ``val_data``
    (same columns) is the validation set; split sizes are then an error. Encodings and imputations are learnt
    on the training rows only."""
    from lumos.valuation.table import TableEncoder, drop_missing, encode_table_labels, read_table

    if data.startswith("builtin:"):
        given = [o for o, v in (("--val-data", val_data), ("--id-col", id_col), ("--drop-cols", drop_cols),
                                ("--categorical", categorical)) if v]
        if given:
            raise LumosError(f"{', '.join(given)} apply to a CSV/NPZ file, not to {data}; save it as a file first.")
        X, y = load_builtin(data.split(":", 1)[1], seed=seed)
        split = make_split(X, y, *_split_sizes(n_train, n_val), seed=seed)
        names = [f"x{j}" for j in range(X.shape[1])]
        assert split.train_idx is not None  # make_split records every point's position
        return ValuationInput(split, split.train_idx, None, None, np.unique(y).astype(str), names, [],
                              _split_sentence(data, split))
    opts = {"id_col": id_col, "drop_cols": drop_cols, "categorical": categorical}
    table = read_table(data, label_col, **opts)
    notes: list[str] = []
    if impute == "drop":
        table, note = drop_missing(table)
        notes += [note] if note else []
    codes, classes = encode_table_labels(table)
    encoder = TableEncoder(impute, categorical)
    if val_data is None:
        sizes = _split_sizes(n_train, n_val)
        tr, _, _ = split_indices(len(table), *sizes, seed)
        encoder.fit(table.take(tr))  # encodings and imputations learnt on the training rows only
        X, more = encoder.transform(table)
        split = make_split(X, codes, *sizes, seed=seed)  # the same seeded split, now of the encoded rows
        idx = split.train_idx
        description = _split_sentence(data, split)
    else:
        if n_train is not None or n_val is not None:
            raise LumosError("--train/--val split one file; with --val-data every row of the data file is valued and "
                             "the validation rows come from --val-data. Drop --train/--val.")
        vtable = read_table(val_data, label_col, **opts, option="--val-data")
        if impute == "drop":
            vtable, note = drop_missing(vtable)
            notes += [note] if note else []
        vcodes, _ = encode_table_labels(vtable, classes)
        encoder.fit(table)
        X, more = encoder.transform(table)
        Xv, vmore = encoder.transform(vtable)
        more += vmore
        X, Xv = standardize(X, Xv)
        idx = np.arange(len(table))
        split = Split(X, codes, Xv, vcodes, Xv, vcodes, idx, None, None)
        description = (f"all {len(table)} rows of {data} are valued; validation: the {len(vtable)} rows of {val_data} "
                       "(also the test set of the removal curves)")
    if len(np.unique(split.y_train)) < 2:
        raise LumosError(f"{data}: the training rows hold one class ({classes[split.y_train[0]]!r}); valuation needs "
                         "at least two.")
    return ValuationInput(split, table.rows[idx], None if table.ids is None else table.ids[idx], table.id_col,
                          classes, encoder.feature_names_, notes + encoder.notes_ + more, description)


def _split_sentence(data: str, split: Split) -> str:
    n = len(split.y_train) + len(split.y_val) + len(split.y_test)
    return (f"{data}: {n} rows split at random (--seed) into {len(split.y_train)} training rows (valued), "
            f"{len(split.y_val)} validation and {len(split.y_test)} test rows (--train/--val; pass --val-data to "
            "value every row)")

"""Built-in data for valuation: scikit-learn's bundled digits, breast cancer and wine (no download), and
synthetic Gaussian mixtures; embeddings of the built-in synthetic images (penultimate features of the built-in
CNN of ``lumos.vision``); splitting, standardisation and loading user CSV / NPZ files.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lumos.core.env import env_int
from lumos.core.errors import LumosError, bad_param, one_line

__all__ = ["BUILTIN", "load_builtin", "gaussian_mixture", "shape_embeddings", "Split", "make_split", "load_table"]

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
    """Train / validation / test arrays (features standardised with training statistics)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1


def make_split(X: np.ndarray, y: np.ndarray, n_train: int | float, n_val: int | float, seed: int = 0,
               standardize: bool = True) -> Split:
    """Shuffle and split into train (``n_train``), validation (``n_val``) and test (the rest).

    Sizes are counts, or fractions of N when < 1. Features are standardised with the training mean and std.
    """
    n = len(X)
    for name, v in (("n_train", n_train), ("n_val", n_val)):
        if v >= 1 and v != int(v):
            raise bad_param(name, "a fraction (< 1) or a whole number of points", v, owner="make_split")
    nt = int(round(n_train * n)) if isinstance(n_train, float) and n_train < 1 else int(n_train)
    nv = int(round(n_val * n)) if isinstance(n_val, float) and n_val < 1 else int(n_val)
    if nt < 2 or nv < 1 or nt + nv >= n:
        raise bad_param("n_train / n_val", f"n_train >= 2, n_val >= 1 and n_train + n_val < N = {n}", (nt, nv),
                        owner="make_split", fix="Leave at least one point for the test split.")
    perm = np.random.default_rng(seed).permutation(n)
    tr, va, te = perm[:nt], perm[nt:nt + nv], perm[nt + nv:]
    X = np.asarray(X, dtype=np.float64)
    if standardize:
        mu, sd = X[tr].mean(0), X[tr].std(0)
        X = (X - mu) / np.where(sd > 1e-12, sd, 1.0)
    y = np.asarray(y, dtype=np.int64)
    return Split(X[tr], y[tr], X[va], y[va], X[te], y[te])


def _encode_labels(raw: np.ndarray) -> np.ndarray:
    if raw.dtype.kind in "US":  # numeric strings sort as numbers ("2" < "10")
        try:
            raw = raw.astype(np.float64)
        except ValueError:
            pass
    _, codes = np.unique(raw, return_inverse=True)
    return codes.astype(np.int64)


#: Largest data file ``load_table`` reads (bytes); override with LUMOS_MAX_DATA_BYTES.
MAX_DATA_BYTES = 2 * 1024**3


def load_table(path: str | Path, label_col: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Load ``DATA.csv`` (header row; numeric feature columns + the label column) or ``DATA.npz`` (arrays
    ``X`` and ``label_col``, read without pickle). Labels of any type are encoded as 0..K-1 in sorted order.

    Every problem is a :class:`LumosError` naming the file: not UTF-8, ragged rows, non-numeric or non-finite
    features, an empty file, a non-zip or pickled (object) NPZ, mismatched lengths, a file above the size cap."""

    p = Path(path)
    if not p.is_file():
        raise bad_param("data", "an existing .csv or .npz file (or builtin:NAME)", str(p), owner="lumos value")
    size, cap = p.stat().st_size, env_int("LUMOS_MAX_DATA_BYTES", MAX_DATA_BYTES, low=1)
    if size == 0:
        raise LumosError(f"{p} is empty. Pass a CSV with a header row or an NPZ with arrays X and {label_col!r}.")
    if size > cap:
        raise LumosError(f"{p} is {size} bytes, above the cap of {cap}. Subsample it, or raise LUMOS_MAX_DATA_BYTES.")
    if p.suffix == ".npz":
        X, raw = _load_npz(p, label_col)
    elif p.suffix == ".csv":
        X, raw = _load_csv(p, label_col)
    else:
        raise bad_param("data", "a .csv or .npz file", p.suffix or str(p), owner="lumos value")
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise LumosError(f"{p}: X must be a non-empty 2-D array (points × features), got shape {X.shape}.")
    if raw.ndim != 1 or len(raw) != len(X):
        raise LumosError(f"{p}: {len(X)} rows of X but labels of shape {raw.shape}; give one label per row.")
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise LumosError(f"{p}: {int(bad.sum())} non-finite feature value(s) (first at row {i + 1}, feature {j + 1}: "
                         f"{X[i, j]}). Remove or impute them.")
    return X, _encode_labels(raw)


def _load_npz(p: Path, label_col: str) -> tuple[np.ndarray, np.ndarray]:
    import zipfile

    try:
        z = np.load(p, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise LumosError(f"{p} is not a valid .npz file ({type(exc).__name__}). Save it with numpy.savez.") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise LumosError(f"{p} holds a single array, not an .npz archive of arrays X and {label_col!r}.")
    with z:
        if "X" not in z.files or label_col not in z.files:
            raise LumosError(f"{p}: expected arrays 'X' and '{label_col}'; found {', '.join(z.files) or 'none'}.")
        try:
            X_raw, raw = z["X"], np.asarray(z[label_col])
        except ValueError as exc:  # object arrays need pickle, which is refused
            raise LumosError(f"{p}: an array holds Python objects ({one_line(exc, 120)}); save plain numeric arrays "
                             "(no dtype=object).") from None
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise LumosError(f"{p} is a damaged .npz file ({type(exc).__name__}).") from None
    if X_raw.dtype.kind not in "biuf":
        raise LumosError(f"{p}: X must be numeric, got dtype {X_raw.dtype}. Encode features as numbers.")
    if raw.dtype.kind not in "biufUS":
        raise LumosError(f"{p}: '{label_col}' must hold numbers or strings, got dtype {raw.dtype}.")
    return np.asarray(X_raw, dtype=np.float64), raw


def _load_csv(p: Path, label_col: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError as exc:
        raise LumosError(f"{p} is not UTF-8 text (byte {exc.start}: {exc.reason}); re-save it as UTF-8 "
                         "(e.g. iconv -f latin1 -t utf-8).") from None
    except csv.Error as exc:
        raise LumosError(f"{p} is not a valid CSV file ({exc}).") from None
    if len(rows) < 2:
        raise LumosError(f"{p}: expected a header row and at least one data row.")
    header = [h.strip() for h in rows[0]]
    if label_col not in header:
        raise bad_param("--label-col", "a column of the CSV header", label_col, owner="lumos value",
                        fix=f"Columns: {', '.join(header[:20])}.")
    j = header.index(label_col)
    for n, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise LumosError(f"{p}: line {n} has {len(r)} fields but the header has {len(header)}; every row needs one "
                             "value per column.")
    X = np.empty((len(rows) - 1, len(header) - 1), dtype=np.float64)
    for n, r in enumerate(rows[1:]):
        for k, (col, v) in enumerate((c, v) for i, (c, v) in enumerate(zip(header, r)) if i != j):
            try:
                X[n, k] = float(v)
            except ValueError:
                raise LumosError(f"{p}: line {n + 2}, column {col!r}: {v.strip()[:40]!r} is not a number; every "
                                 "feature column must be numeric.") from None
    raw = np.array([r[j].strip() for r in rows[1:]])
    return X, raw

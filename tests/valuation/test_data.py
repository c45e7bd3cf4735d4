"""Built-in data, splitting and CSV/NPZ loading."""

import numpy as np
import pytest

from lumos.core.errors import LumosError
from lumos.valuation.data import (
    gaussian_mixture,
    load_builtin,
    load_valuation_data,
    make_split,
    split_indices,
)


@pytest.mark.parametrize("name,shape,k", [("digits", (1797, 64), 10), ("breast_cancer", (569, 30), 2),
                                          ("wine", (178, 13), 3)])
def test_builtin(name, shape, k):
    X, y = load_builtin(name)
    assert X.shape == shape and y.max() + 1 == k and X.dtype == np.float64


def test_gaussian_mixture_and_split():
    X, y = gaussian_mixture(n=500, n_features=5, n_classes=4, seed=1)
    assert X.shape == (500, 5) and np.bincount(y).tolist() == [125] * 4
    X2, _ = gaussian_mixture(n=500, n_features=5, n_classes=4, seed=1)
    assert np.array_equal(X, X2)
    sp = make_split(X, y, 300, 0.2, seed=0)
    assert len(sp.y_train) == 300 and len(sp.y_val) == 100 and len(sp.y_test) == 100
    assert np.allclose(sp.X_train.mean(0), 0, atol=1e-12)
    with pytest.raises(LumosError, match="test split"):
        make_split(X, y, 400, 100)
    with pytest.raises(LumosError, match="one of"):
        load_builtin("mnist")


def test_make_split_records_positions():
    X, y = gaussian_mixture(n=50, n_features=3, n_classes=2, seed=0)
    sp = make_split(X, y, 20, 10, seed=4, standardize=False)
    assert sorted(np.concatenate([sp.train_idx, sp.val_idx, sp.test_idx]).tolist()) == list(range(50))
    np.testing.assert_array_equal(sp.X_train, X[sp.train_idx])
    np.testing.assert_array_equal(sp.y_test, y[sp.test_idx])
    tr, va, te = split_indices(50, 20, 10, seed=4)
    assert np.array_equal(tr, sp.train_idx) and np.array_equal(te, sp.test_idx)


def _messy(tmp_path, n=40, name="d.csv"):
    lines = ["key,f,kind,y"]
    for i in range(n):
        f = "" if i % 9 == 4 else f"{(i % 2) * 3 + 0.01 * i:.3f}"
        lines.append(f"k{i},{f},{'ab'[i % 2]},{'no' if i % 2 else 'yes'}")
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def test_load_valuation_data_keeps_identity(tmp_path):
    inp = load_valuation_data(str(_messy(tmp_path)), "y", id_col="key", n_train=20, n_val=8, seed=2)
    sp = inp.split
    assert len(inp.rows) == 20 and inp.ids.tolist() == [f"k{r}" for r in inp.rows]
    assert inp.classes[sp.y_train].tolist() == ["no" if r % 2 else "yes" for r in inp.rows]
    assert inp.feature_names == ["f", "kind=a", "kind=b"] and any("'f'" in n and "mean" in n for n in inp.notes)
    assert "20 training rows (valued), 8 validation and 12 test" in inp.description
    assert np.isfinite(sp.X_train).all() and np.allclose(sp.X_train.mean(0), 0, atol=1e-12)


def test_load_valuation_data_with_val_file_values_every_row(tmp_path):
    inp = load_valuation_data(str(_messy(tmp_path)), "y", val_data=str(_messy(tmp_path, 12, "v.csv")),
                              id_col="key", impute="drop")
    kept = [i for i in range(40) if i % 9 != 4]
    assert inp.rows.tolist() == kept and len(inp.split.y_val) == 12 - 1
    assert any("dropped 4 row(s)" in n for n in inp.notes)
    with pytest.raises(LumosError, match="--train/--val split one file"):
        load_valuation_data(str(_messy(tmp_path)), "y", val_data=str(_messy(tmp_path, 12, "v.csv")), n_train=0.5)
    (tmp_path / "other.csv").write_text("key,g,kind,y\nk1,1,a,yes\n")
    with pytest.raises(LumosError, match="feature columns differ"):
        load_valuation_data(str(_messy(tmp_path)), "y", val_data=str(tmp_path / "other.csv"), id_col="key")
    with pytest.raises(LumosError, match="--id-col apply to a CSV/NPZ file"):
        load_valuation_data("builtin:wine", id_col="key")
    with pytest.raises(LumosError, match="one class"):
        _one_class(tmp_path)


def _one_class(tmp_path):
    (tmp_path / "o.csv").write_text("a,y\n" + "".join(f"{i},x\n" for i in range(5)))
    (tmp_path / "v.csv").write_text("a,y\n1,x\n")
    load_valuation_data(str(tmp_path / "o.csv"), "y", val_data=str(tmp_path / "v.csv"))


def test_shape_embeddings_are_cnn_penultimate_features(tmp_path):
    import torch

    from lumos.valuation import CHGValuation
    from lumos.valuation.data import shape_embeddings
    from lumos.vision.train import default_train_config, load_or_train_builtin

    X, y = shape_embeddings(n=40, quick=True, cache_dir=tmp_path)
    assert X.dtype == np.float64 and X.shape[0] == 40 and y.shape == (40,)
    assert set(np.unique(y)) <= set(range(6))
    # the features are exactly what the cached CNN's last linear layer receives: its logits are reproduced
    trained = load_or_train_builtin(default_train_config("cnn", quick=True), tmp_path)
    head = [m for m in trained.model.modules() if isinstance(m, torch.nn.Linear)][-1]
    X2, _ = shape_embeddings(n=40, quick=True, cache_dir=tmp_path)
    np.testing.assert_array_equal(X, X2)  # deterministic, loaded from the cache
    from lumos.data.synthetic import SyntheticShapes

    cfg = trained.train
    imgs = SyntheticShapes(40, cfg.image_size, cfg.seed, offset=cfg.n_train + cfg.n_test,
                           mean=trained.mean, std=trained.std)
    with torch.no_grad():
        logits = trained.model(imgs.normalized())
        again = head(torch.from_numpy(X).float())
    torch.testing.assert_close(again, logits, atol=1e-5, rtol=1e-5)
    vals = CHGValuation(epochs=2).fit(X, y).values_
    assert vals.shape == (40,) and np.isfinite(vals).all()

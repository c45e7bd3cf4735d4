"""Built-in data, splitting and CSV/NPZ loading."""

import numpy as np
import pytest

from lumos.core.errors import LumosError
from lumos.valuation.data import gaussian_mixture, load_builtin, load_table, make_split


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


def test_load_csv_and_npz(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("a,y,b\n1,10,2\n3,2,4\n5,10,6\n")
    X, y = load_table(csv, "y")
    assert X.tolist() == [[1, 2], [3, 4], [5, 6]] and y.tolist() == [1, 0, 1]  # "2" < "10" numerically
    npz = tmp_path / "d.npz"
    np.savez(npz, X=np.ones((4, 2)), label=np.array(["a", "b", "a", "b"]))
    X, y = load_table(npz, "label")
    assert X.shape == (4, 2) and y.tolist() == [0, 1, 0, 1]
    with pytest.raises(LumosError, match="column"):
        load_table(csv, "target")
    with pytest.raises(LumosError, match="existing"):
        load_table(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("a,y\nx,1\n")
    with pytest.raises(LumosError, match="numeric"):
        load_table(tmp_path / "bad.csv")


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

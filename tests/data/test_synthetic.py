import numpy as np
import pytest
import torch

from lumos.core.errors import LumosError
from lumos.data.synthetic import CLASSES, SyntheticShapes, make_sample, synthetic_splits


def test_deterministic_and_index_addressable():
    a = SyntheticShapes(12, 32, seed=3)
    b = SyntheticShapes(12, 32, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes)
    img, label, box = make_sample(3, 5, 32)
    assert np.array_equal(img, a.images[5].numpy()) and label == int(a.labels[5])
    c = SyntheticShapes(12, 32, seed=4)
    assert not torch.equal(a.images, c.images)


def test_shapes_ranges_boxes_and_classes():
    d = SyntheticShapes(60, 40, seed=0)
    assert d.images.shape == (60, 3, 40, 40) and float(d.images.min()) >= 0 and float(d.images.max()) <= 1
    x0, y0, x1, y1 = d.boxes.T
    assert bool(((x0 < x1) & (y0 < y1) & (x0 >= 0) & (y0 >= 0) & (x1 <= 40) & (y1 <= 40)).all())
    assert set(d.labels.tolist()) == set(range(len(CLASSES)))
    # the object differs from the background: pixels inside the box are not all background-like
    x, label, box = d[0]
    assert x.shape == (3, 40, 40) and isinstance(label, int)
    assert_norm = d.normalized()
    assert torch.allclose(assert_norm.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)


def test_splits_are_disjoint_and_share_statistics():
    train, test = synthetic_splits(20, 10, 32, seed=1)
    assert test.mean == train.mean and test.std == train.std
    img, _, _ = make_sample(1, 20, 32)
    assert np.array_equal(test.images[0].numpy(), img)


def test_errors():
    with pytest.raises(LumosError, match="positive int"):
        SyntheticShapes(0)
    with pytest.raises(LumosError, match="≥ 16"):
        SyntheticShapes(4, size=8)

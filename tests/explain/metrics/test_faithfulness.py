"""Metrics against hand-computed values (a model whose class probabilities we control exactly)."""

import math

import pytest
import torch
from torch import nn

from lumos.core.errors import LumosError
from lumos.explain.metrics import FaithfulnessMeter, adcc, coherency, complexity, faithfulness
from lumos.testing import assert_close


class MeanLogit(nn.Module):
    """logits = (mean of channel 0, 0): p_0 = sigmoid(mean) — easy to compute by hand."""

    def forward(self, x):
        m = x[:, 0].mean(dim=(1, 2))
        return torch.stack([m, torch.zeros_like(m)], dim=1)


def sig(v):
    return 1 / (1 + math.exp(-v))


def test_faithfulness_hand_computed():
    x = torch.full((2, 1, 2, 2), 2.0)
    x[1] = -1.0
    cams = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[1.0, 1.0], [1.0, 1.0]]])
    explained = []
    out = faithfulness(MeanLogit(), x, cams, torch.tensor([0, 0]),
                       explain=lambda xa: explained.append(xa) or cams.flip(-1))
    # image 0: Y = σ(2); x⊙cam mean = 2·0.5 = 1 → O_add = σ(1); x⊙(1−cam) mean = 1 → O_del = σ(1)
    y0, oa0 = sig(2), sig(1)
    # image 1: Y = σ(−1); cam = 1 → O_add = Y (no increase), x⊙0 → O_del = σ(0) = 0.5 > Y → drop 0
    y1 = sig(-1)
    assert_close("ad", out["ad"], torch.tensor([(y0 - oa0) / y0, 0.0], dtype=torch.float64), atol=1e-6)
    assert out["ic"].tolist() == [0.0, 0.0]
    assert_close("add", out["add"], torch.tensor([(y0 - sig(1)) / y0, max(0, y1 - 0.5) / y1], dtype=torch.float64),
                 atol=1e-6)
    assert_close("com", out["com"], torch.tensor([0.5, 1.0], dtype=torch.float64), atol=1e-12)
    assert torch.equal(explained[0], x * cams[:, None])
    # coherency: image 0 vs its mirror: a = (1, 0, .5, .5), b = (0, 1, .5, .5) → r = −1 → 0; image 1 constant → 0
    assert_close("coh", out["coh"], torch.tensor([0.0, 0.0], dtype=torch.float64), atol=1e-12)


def test_increase_in_confidence_is_strict():
    x = torch.full((1, 1, 2, 2), -1.0)
    cams = torch.full((1, 2, 2), 0.5)  # mean −0.5 > −1 → O_add > Y
    out = faithfulness(MeanLogit(), x, cams, torch.tensor([0]))
    assert out["ic"].tolist() == [1.0] and out["ad"].tolist() == [0.0]
    out = faithfulness(MeanLogit(), x, torch.ones(1, 2, 2), torch.tensor([0]))
    assert out["ic"].tolist() == [0.0]  # equal is not an increase


def test_coherency_pearson_and_complexity():
    a = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    b = torch.tensor([[[0.0, 2.0], [4.0, 7.0]]])
    r = ((a - a.mean()) * (b - b.mean())).sum() / ((a - a.mean()).norm() * (b - b.mean()).norm())
    assert_close("coh", coherency(a, b), ((r + 1) / 2).double()[None], atol=1e-12)
    assert coherency(a, torch.full_like(a, float("nan"))).tolist() == [0.0]
    assert_close("com", complexity(torch.tensor([[[-1.0, 1.0], [0.0, 0.5]]])), torch.tensor([0.625]), atol=1e-7)


def test_adcc_from_dataset_means():
    # ADCC = 3 / (1/Coh + 1/(1−Com) + 1/(1−AD))
    assert adcc(0.9, 0.4, 0.2) == pytest.approx(3 / (1 / 0.9 + 1 / 0.6 + 1 / 0.8))
    assert adcc(0.0, 0.4, 0.2) == 0.0
    meter = FaithfulnessMeter()
    meter.update({"ad": torch.tensor([0.1, 0.3]), "coh": torch.tensor([0.8, 1.0]), "com": torch.tensor([0.2, 0.6])})
    meter.update({"ad": torch.tensor([0.2]), "coh": torch.tensor([0.9]), "com": torch.tensor([0.4])})
    s = meter.summary()
    assert s["n"] == 3 and s["ad"] == pytest.approx(0.2) and s["coh"] == pytest.approx(0.9)
    assert s["adcc"] == pytest.approx(adcc(0.9, 0.4, 0.2))  # from means, not the mean of per-image ADCC
    per_image = [adcc(c, m, d) for c, m, d in ((0.8, 0.2, 0.1), (1.0, 0.6, 0.3), (0.9, 0.4, 0.2))]
    assert s["adcc"] != pytest.approx(sum(per_image) / 3)


def test_shape_errors():
    with pytest.raises(LumosError, match="matching x"):
        faithfulness(MeanLogit(), torch.zeros(2, 1, 4, 4), torch.zeros(2, 3, 3), torch.tensor([0, 0]))
    with pytest.raises(LumosError, match="3-D"):
        complexity(torch.zeros(4, 4))

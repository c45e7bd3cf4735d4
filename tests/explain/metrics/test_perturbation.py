import torch

from lumos.explain.metrics import deletion_auc, insertion_auc, perturbation_curve, pixel_ranks
from lumos.testing import assert_close

from .test_faithfulness import MeanLogit, sig


def test_pixel_ranks_ties_by_position():
    cams = torch.tensor([[[0.5, 1.0], [0.5, 0.0]]])
    assert pixel_ranks(cams).tolist() == [[[1, 0], [2, 3]]]


def test_deletion_and_insertion_hand_computed():
    # x = (4, 0, 0, 0): removing the salient pixel first drops the mean from 1 to 0 at the first step.
    x = torch.tensor([[[[4.0, 0.0], [0.0, 0.0]]]])
    good = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    bad = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])
    c = torch.tensor([0])
    curve = perturbation_curve(MeanLogit(), x, good, c, mode="deletion", steps=4)
    assert_close("curve", curve, torch.tensor([[sig(1), 0.5, 0.5, 0.5, 0.5]], dtype=torch.float64), atol=1e-6)
    d_good = deletion_auc(MeanLogit(), x, good, c, steps=4)
    d_bad = deletion_auc(MeanLogit(), x, bad, c, steps=4)
    expected = 0.25 * (sig(1) / 2 + 0.5 + 0.5 + 0.5 + 0.5 / 2)  # trapezoid
    assert_close("auc", d_good, torch.tensor([expected], dtype=torch.float64), atol=1e-6)
    assert float(d_good) < float(d_bad)
    assert float(insertion_auc(MeanLogit(), x, good, c, steps=4)) > float(insertion_auc(MeanLogit(), x, bad, c, steps=4))

import pytest
import torch

from lumos.core.errors import LumosError
from lumos.explain.metrics import box_masks, energy_pointing_game, pointing_game
from lumos.testing import assert_close


def test_box_masks_exclusive_ends():
    m = box_masks(torch.tensor([[1, 0, 3, 2]]), (3, 4))
    assert m.int().tolist() == [[[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]]


def test_energy_and_classic_pointing_game():
    cams = torch.zeros(2, 4, 4)
    cams[0, 0, 0] = 1.0  # inside the box
    cams[0, 3, 3] = 3.0  # outside, and the maximum
    boxes = torch.tensor([[0, 0, 2, 2], [0, 0, 4, 4]])
    e = energy_pointing_game(cams, boxes)
    assert_close("energy", e, torch.tensor([0.25, 0.0], dtype=torch.float64), atol=1e-12)  # all-zero map → 0
    assert pointing_game(cams, boxes).tolist()[0] == 0.0
    assert pointing_game(cams, boxes, tolerance=2).tolist()[0] == 1.0
    masks = box_masks(boxes, (4, 4))
    assert torch.equal(energy_pointing_game(cams, masks), e)
    with pytest.raises(LumosError, match="boxes"):
        energy_pointing_game(cams, torch.tensor([[0, 0, 1, 1]]))

"""Group advantages (vs TRL's formula), dynamic sampling and overlong shaping on hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from lumos.core.errors import LumosError
from lumos.rl import dynamic_sampling_mask, group_advantages, overlong_penalty
from lumos.testing import assert_close


def test_group_advantages_hand_computed():
    # group [1, 0, 0, 1]: mean 0.5, unbiased std sqrt(1/3) ; group [2, 2, 2, 2]: zeros
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    a = group_advantages(r, 4, eps=0.0 + 1e-12)
    s = (1 / 3) ** 0.5
    assert_close("adv", a, torch.tensor([0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s, 0, 0, 0, 0]), atol=1e-5, rtol=1e-5)
    assert_close("none", group_advantages(r, 4, scale="none"), torch.tensor([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]),
                 atol=1e-7, rtol=0)


def test_group_advantages_match_trl_formula():
    nanstd = pytest.importorskip("trl.trainer.utils").nanstd
    g = torch.Generator().manual_seed(0)
    r = torch.rand(12, generator=g)
    G = 4
    mean = r.view(-1, G).mean(1).repeat_interleave(G)
    std = nanstd(r.view(-1, G), dim=1).repeat_interleave(G)
    assert_close("group", group_advantages(r, G), (r - mean) / (std + 1e-4), atol=1e-6, rtol=1e-6)
    assert_close("batch", group_advantages(r, G, scale="batch"), (r - mean) / (nanstd(r) + 1e-4), atol=1e-6, rtol=1e-6)


def test_dynamic_sampling_drops_constant_groups():
    r = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    keep = dynamic_sampling_mask(r, 3)
    assert keep.tolist() == [False] * 3 + [True] * 3 + [False] * 3


def test_overlong_penalty_hand_computed():
    # L_max 10, cache 4: ≤6 → 0 ; 8 → (6−8)/4 = −0.5 ; 10 → −1 ; 11 → −1
    pen = overlong_penalty(torch.tensor([3, 6, 8, 10, 11]), max_length=10, cache=4)
    assert pen.tolist() == [0.0, 0.0, -0.5, -1.0, -1.0]


def test_bad_inputs():
    with pytest.raises(LumosError, match="'rewards'"):
        group_advantages(torch.zeros(5), 2)
    with pytest.raises(LumosError, match="'group_size'"):
        group_advantages(torch.zeros(4), 0)
    with pytest.raises(LumosError, match="'scale'"):
        group_advantages(torch.zeros(4), 2, scale="global")
    with pytest.raises(LumosError, match="'cache'"):
        overlong_penalty(torch.zeros(2), 4, 5)

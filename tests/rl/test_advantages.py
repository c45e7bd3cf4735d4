"""Group advantages (vs TRL's formula), dynamic sampling and overlong shaping on hand-computed cases."""

from __future__ import annotations

import math

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


def test_equal_rewards_give_exact_zeros_reported_case():
    # the reported case: eight rewards of 0.1 in float32 gave -7.45e-5 (float residue / (std + 1e-4))
    r = torch.full((8,), 0.1, dtype=torch.float32)
    for scale in ("group", "batch", "none"):
        a = group_advantages(r, 8, scale=scale)
        assert a.dtype == torch.float32
        assert torch.equal(a, torch.zeros(8)), (scale, a)
    # a flat group next to a group with spread: still exactly zero under the batch std
    r = torch.tensor([0.1] * 8 + [0.1] * 7 + [1.1])
    for scale in ("group", "batch", "none"):
        a = group_advantages(r, 8, scale=scale)
        assert torch.equal(a[:8], torch.zeros(8)), (scale, a[:8])
        assert bool((a[8:] != 0).all())


def _random_rewards(gen: torch.Generator, n: int, kind: str, scale: float, dtype: torch.dtype) -> torch.Tensor:
    if kind == "binary":                           # many ties and many flat groups
        r = torch.randint(0, 2, (n,), generator=gen).double() * 0.9 + 0.1
    elif kind == "levels":                         # a few reward levels, e.g. format / partial / correct
        r = torch.tensor([0.0, 0.1, 0.35, 1.0], dtype=torch.float64)[torch.randint(0, 4, (n,), generator=gen)]
    else:
        r = torch.randn(n, generator=gen, dtype=torch.float64)
    return (r * scale).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_group_advantages_match_reference_loop(dtype):
    from lumos.rl.advantages import group_advantages_reference

    gen = torch.Generator().manual_seed(1)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    cases = 0
    for G in (1, 2, 3, 5, 7, 8, 16):
        for P in (1, 3, 6):
            for kind in ("binary", "levels", "normal"):
                for scale_r in (1e-3, 1.0, 1e4):
                    r = _random_rewards(gen, P * G, kind, scale_r, dtype)
                    if P > 1:       # force one exactly flat group with a value that is not exact in binary
                        r[G:2 * G] = torch.tensor(0.1 * scale_r, dtype=dtype)
                    for scale in ("group", "batch", "none"):
                        fast = group_advantages(r, G, scale=scale)
                        ref = group_advantages_reference(r, G, scale=scale)
                        assert fast.dtype == ref.dtype == dtype
                        # flat groups: exactly zero in both, elsewhere equal to tolerance
                        grouped = r.view(-1, G)
                        flat = (grouped.amax(1) == grouped.amin(1)).repeat_interleave(G)
                        assert bool((fast[flat] == 0).all()) and bool((ref[flat] == 0).all())
                        atol = tol * max(float(r.abs().max()), 1.0) if scale == "none" else tol
                        assert_close(f"G={G} P={P} {kind} x{scale_r} {scale}", fast.double(), ref.double(),
                                     atol=atol, rtol=tol)
                        cases += 1
    assert cases == 7 * 3 * 3 * 3 * 3


def test_group_of_one_and_empty():
    r = torch.tensor([0.3, 1.0, -2.0])
    for scale in ("group", "batch", "none"):
        assert torch.equal(group_advantages(r, 1, scale=scale), torch.zeros(3))
        assert group_advantages(torch.zeros(0), 4, scale=scale).shape == (0,)


def test_group_advantages_reference_bad_inputs():
    from lumos.rl.advantages import group_advantages_reference

    with pytest.raises(LumosError, match="'scale'"):
        group_advantages_reference(torch.zeros(4), 2, scale="global")
    with pytest.raises(LumosError, match="'rewards'"):
        group_advantages_reference(torch.zeros(5), 2)


def test_skipping_nan_equals_group_advantages_without_nan_and_drops_unscorable():
    from lumos.rl.advantages import group_advantages_skipping_nan

    torch.manual_seed(3)
    r = torch.rand(12)
    for scale in ("group", "batch", "none"):
        torch.testing.assert_close(group_advantages_skipping_nan(r, 4, scale=scale), group_advantages(r, 4, scale=scale))
    # group [1, NaN, 0, 1]: statistics over (1, 0, 1): mean 2/3, unbiased std sqrt(1/3); the NaN sample gets 0
    adv = group_advantages_skipping_nan(torch.tensor([1.0, float("nan"), 0.0, 1.0, float("nan"), 5.0, 5.0, 5.0]), 4)
    std = math.sqrt(1 / 3) + 1e-4
    torch.testing.assert_close(adv[:4], torch.tensor([(1 / 3) / std, 0.0, (-2 / 3) / std, (1 / 3) / std]))
    assert adv[4:].tolist() == [0.0] * 4          # one NaN, the rest equal: no signal


def test_dynamic_sampling_leaves_unscorable_samples_out_of_the_spread():
    nan = float("nan")
    r = torch.tensor([1, 0, nan, 1,  1, 1, nan, 1,  nan, nan, nan, nan])
    keep = dynamic_sampling_mask(r, 4).view(3, 4)[:, 0].tolist()
    assert keep == [True, False, False]     # spread among the scorable; equal ones; nothing scorable

"""Group-relative advantages, DAPO dynamic sampling and DAPO overlong reward shaping.

Rewards of a rollout batch are laid out group-major: ``rewards[p * G + g]`` is sample ``g`` of prompt ``p``.
"""

from __future__ import annotations

import math

import torch

from lumos.core.errors import bad_param
from lumos.core.validation import check_choice, check_int, check_positive_int

__all__ = ["group_advantages", "group_advantages_reference", "group_advantages_skipping_nan", "dynamic_sampling_mask",
           "overlong_penalty"]


def _grouped(rewards: torch.Tensor, group_size: int, owner: str) -> torch.Tensor:
    check_positive_int(group_size, "group_size", owner=owner)
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise bad_param("rewards", f"a 1-D tensor whose length is a multiple of group_size={group_size}",
                        f"shape {tuple(rewards.shape)}", owner=owner)
    return rewards.reshape(-1, group_size)


def _check_scale(scale: str, owner: str) -> None:
    check_choice(scale, "scale", ("group", "batch", "none"), owner=owner)


def _work_dtype(rewards: torch.Tensor) -> torch.dtype:
    return torch.float64 if rewards.dtype == torch.float64 else torch.float32


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """GRPO advantages Â_i = (R_i − mean_group R) / (std + eps).

    Args:
        rewards: (P·G,) group-major.
        group_size: G samples per prompt.
        scale: ``"group"`` divides by each group's std (the paper, GRPO), ``"batch"`` by the std of the whole
            batch (TRL ``scale_rewards="batch"``, ScaleRL), ``"none"`` only centres (Dr. GRPO).
        eps: added to the std (TRL uses 1e-4); the std is unbiased (Bessel), as TRL's ``nanstd``.

    Returns:
        (P·G,) advantages, float64 for float64 rewards, else float32. A group whose rewards are all equal
        (max == min, compared exactly on ``rewards``) gets exactly zero under every ``scale``: the float
        residue of R − mean would otherwise be ~1e-8, and ~7e-5 once divided by std + eps (for eight rewards
        of 0.1 in float32), which AdamW with eps = 1e-15 turns into full-size steps. With G = 1 every group
        is such a group. :func:`group_advantages_reference` is the per-group loop this must match.
    """
    owner = "group_advantages"
    _check_scale(scale, owner)
    grouped = _grouped(rewards, group_size, owner)
    r = grouped.to(_work_dtype(rewards))
    if r.numel() == 0:
        return r.reshape(-1)
    centred = r - r.mean(dim=1, keepdim=True)
    if scale == "group":
        centred = centred / (r.std(dim=1, keepdim=True) + eps) if group_size > 1 else centred
    elif scale == "batch":
        centred = centred / ((r.std() if r.numel() > 1 else 0.0) + eps)
    flat = grouped.amax(dim=1, keepdim=True) == grouped.amin(dim=1, keepdim=True)
    return centred.masked_fill(flat, 0.0).reshape(-1)


def group_advantages_reference(rewards: torch.Tensor, group_size: int, scale: str = "group",
                               eps: float = 1e-4) -> torch.Tensor:
    """The slow twin of :func:`group_advantages`: one Python loop over the groups, float64 arithmetic.

    For group g with rewards R_1..R_G: if all R_i are equal, Â_i = 0; else Â_i = (R_i − mean R) / d with
    d = std_unbiased(group) + eps ("group"), std_unbiased(all rewards) + eps ("batch") or 1 ("none").
    Returned in the dtype :func:`group_advantages` returns.
    """
    owner = "group_advantages_reference"
    _check_scale(scale, owner)
    grouped = _grouped(rewards, group_size, owner)
    values = [float(x) for x in rewards.reshape(-1).tolist()]
    n = len(values)
    batch_mean = sum(values) / n if n else 0.0
    batch_std = math.sqrt(sum((x - batch_mean) ** 2 for x in values) / (n - 1)) if n > 1 else 0.0
    out: list[float] = []
    for row in grouped.tolist():
        if max(row) == min(row):
            out.extend(0.0 for _ in row)
            continue
        mean = sum(row) / len(row)
        std = math.sqrt(sum((x - mean) ** 2 for x in row) / (len(row) - 1))
        d = {"group": std + eps, "batch": batch_std + eps, "none": 1.0}[scale]
        out.extend((x - mean) / d for x in row)
    return torch.tensor(out, dtype=_work_dtype(rewards))


def group_advantages_skipping_nan(rewards: torch.Tensor, group_size: int, scale: str = "group",
                                  eps: float = 1e-4) -> torch.Tensor:
    """:func:`group_advantages` for rewards with NaN entries (*unscorable* samples, as TRL's): a NaN sample gets
    advantage 0 and is left out of every statistic (its group's mean and std, the batch std), as TRL's
    ``nanmean``/``nanstd``. A group with fewer than two scorable samples, or whose scorable rewards are all
    equal, gets 0. Without NaNs this equals :func:`group_advantages` (a Python loop over groups, float64).
    """
    owner = "group_advantages_skipping_nan"
    _check_scale(scale, owner)
    grouped = _grouped(rewards, group_size, owner)
    finite = [float(x) for x in rewards.reshape(-1).tolist() if not math.isnan(float(x))]
    n = len(finite)
    batch_mean = sum(finite) / n if n else 0.0
    batch_std = math.sqrt(sum((x - batch_mean) ** 2 for x in finite) / (n - 1)) if n > 1 else 0.0
    out: list[float] = []
    for row in grouped.tolist():
        vals = [x for x in row if not math.isnan(x)]
        if not vals or max(vals) == min(vals):
            out.extend(0.0 for _ in row)
            continue
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((x - mean) ** 2 for x in vals) / (len(vals) - 1))
        d = {"group": std + eps, "batch": batch_std + eps, "none": 1.0}[scale]
        out.extend(0.0 if math.isnan(x) else (x - mean) / d for x in row)
    return torch.tensor(out, dtype=_work_dtype(rewards))


def dynamic_sampling_mask(rewards: torch.Tensor, group_size: int, atol: float = 1e-8) -> torch.Tensor:
    """DAPO dynamic sampling: False for every sample of a group whose rewards are all equal.

    Such groups have zero advantage and contribute no gradient, but still count in token-level
    normalisation; DAPO drops them and keeps sampling until the batch is full (the trainer refills with
    further generation rounds, at most ``RLConfig.dynamic_sampling_max_rounds``).

    An unscorable sample (reward NaN) is left out of its group's spread, as out of its baseline: the group is
    kept when its scorable rewards differ.

    Returns:
        (P·G,) bool, True where the sample's group has reward spread > ``atol``.
    """
    r = _grouped(rewards, group_size, "dynamic_sampling_mask")
    nan = r.isnan()
    hi = torch.where(nan, torch.full_like(r, -math.inf), r).max(dim=1).values
    lo = torch.where(nan, torch.full_like(r, math.inf), r).min(dim=1).values
    keep = (hi - lo) > atol          # an all-NaN group: -inf - inf, not kept
    return keep.repeat_interleave(group_size)


def overlong_penalty(lengths: torch.Tensor, max_length: int, cache: int) -> torch.Tensor:
    """DAPO soft overlong punishment (Eq. 13), added to the task reward.

    R_len(y) = 0 if |y| ≤ L_max − L_cache; ((L_max − L_cache) − |y|) / L_cache if inside the cache window;
    −1 if |y| > L_max.

    Args:
        lengths: (N,) response lengths in tokens.
        max_length: L_max (the generation limit).
        cache: L_cache, the soft window (0 < cache ≤ max_length).
    """
    owner = "overlong_penalty"
    check_positive_int(max_length, "max_length", owner=owner)
    check_int(cache, "cache", 1, max_length, owner=owner)
    n = lengths.to(torch.float32)
    start = max_length - cache
    pen = torch.where(n > start, (start - n) / cache, torch.zeros_like(n))
    return torch.where(n > max_length, torch.full_like(n, -1.0), pen)

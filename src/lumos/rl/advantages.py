"""Group-relative advantages, DAPO dynamic sampling and DAPO overlong reward shaping.

Rewards of a rollout batch are laid out group-major: ``rewards[p * G + g]`` is sample ``g`` of prompt ``p``.
"""

from __future__ import annotations

import torch

from lumos.core.errors import bad_param
from lumos.core.validation import check_int, check_positive_int

__all__ = ["group_advantages", "dynamic_sampling_mask", "overlong_penalty"]


def _grouped(rewards: torch.Tensor, group_size: int, owner: str) -> torch.Tensor:
    check_positive_int(group_size, "group_size", owner=owner)
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise bad_param("rewards", f"a 1-D tensor whose length is a multiple of group_size={group_size}",
                        f"shape {tuple(rewards.shape)}", owner=owner)
    return rewards.reshape(-1, group_size)


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """GRPO advantages Â_i = (R_i − mean_group R) / (std + eps).

    Args:
        rewards: (P·G,) float, group-major.
        group_size: G samples per prompt.
        scale: ``"group"`` divides by each group's std (the paper, GRPO), ``"batch"`` by the std of the whole
            batch (TRL ``scale_rewards="batch"``, ScaleRL), ``"none"`` only centres (Dr. GRPO).
        eps: added to the std (TRL uses 1e-4); the std is unbiased (Bessel), as TRL's ``nanstd``.

    Returns:
        (P·G,) advantages; a group whose rewards are all equal gets zeros. With G = 1 the "group" std is
        undefined and the advantages are zeros (only centring applies).
    """
    owner = "group_advantages"
    if scale not in ("group", "batch", "none"):
        raise bad_param("scale", "one of 'group', 'batch', 'none'", scale, owner=owner)
    r = _grouped(rewards.to(torch.float32), group_size, owner)
    centred = r - r.mean(dim=1, keepdim=True)
    if scale == "none":
        return centred.reshape(-1)
    if scale == "group":
        std = r.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(r[:, :1])
    else:
        std = r.reshape(-1).std() if r.numel() > 1 else torch.zeros(())
    return (centred / (std + eps)).reshape(-1)


def dynamic_sampling_mask(rewards: torch.Tensor, group_size: int, atol: float = 1e-8) -> torch.Tensor:
    """DAPO dynamic sampling: False for every sample of a group whose rewards are all equal.

    Such groups have zero advantage and contribute no gradient, but still count in token-level
    normalisation; DAPO drops them and keeps sampling until the batch is full (the trainer refills with
    further generation rounds, at most ``RLConfig.dynamic_sampling_max_rounds``).

    Returns:
        (P·G,) bool, True where the sample's group has reward spread > ``atol``.
    """
    r = _grouped(rewards, group_size, "dynamic_sampling_mask")
    keep = (r.max(dim=1).values - r.min(dim=1).values) > atol
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

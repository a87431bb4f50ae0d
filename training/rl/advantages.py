"""Group-relative advantages: GRPO's, and PA-GRPO's per process.

GRPO samples ``G`` completions per prompt (a *group*, consecutive rows) and gives completion
``i`` the advantage ``(r_i - mean(r_group)) / (std(r_group) + eps)`` (``std`` with Bessel's
correction, ``eps = 1e-4``: TRL's and Video-R1's formula). PA-GRPO does this twice, once on
the perception rewards and once on the reasoning rewards, each normalised within its group
separately, and gives every perception token the perception advantage and every reasoning
token the reasoning advantage: a (B, T) tensor instead of GRPO's (B,).

A reward may be NaN (no verdict from the judge): it is left out of its group's mean and std,
and its own advantage is 0, so a failed judgement neither rewards nor punishes.
"""

from __future__ import annotations

import torch

SCALINGS = ("group", "batch", "none")
EPSILON = 1e-4


def nanstd(values: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Bessel-corrected standard deviation along ``dim`` ignoring NaNs; NaN where fewer
    than two values."""
    mean = torch.nanmean(values, dim=dim, keepdim=True)
    count = (~values.isnan()).sum(dim=dim)
    variance = torch.nansum((values - mean) ** 2, dim=dim) / (count - 1).clamp(min=1)
    return torch.where(count > 1, variance.sqrt(), torch.full_like(variance, float("nan")))


def group_normalize(rewards: torch.Tensor, group_size: int, *, scale: str = "group",
                    eps: float = EPSILON) -> torch.Tensor:
    """GRPO's advantages of ``rewards`` (N,), groups of ``group_size`` consecutive rows.

    ``scale``: ``"group"`` divides by the group's std (GRPO), ``"batch"`` by the std of the
    whole batch, ``"none"`` only centres (Dr. GRPO). NaN rewards get advantage 0.
    """
    if scale not in SCALINGS:
        raise ValueError(f"scale must be one of {SCALINGS}, got {scale!r}")
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(f"need a 1-D reward tensor whose length is a multiple of {group_size}, "
                         f"got shape {tuple(rewards.shape)}")
    grouped = rewards.float().view(-1, group_size)
    centred = grouped - torch.nanmean(grouped, dim=1, keepdim=True)
    if scale == "group":
        centred = centred / (nanstd(grouped)[:, None] + eps)
    elif scale == "batch":
        centred = centred / (nanstd(rewards.float()) + eps)
    return torch.nan_to_num(centred.reshape(-1), nan=0.0)


def collapsed_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N / group_size,) bool: groups whose (non-NaN) rewards are all equal, so every
    advantage in them is 0 and the group teaches nothing (advantage collapse)."""
    grouped = rewards.float().view(-1, group_size)
    spread = torch.nan_to_num(nanstd(grouped), nan=0.0)
    return torch.isclose(spread, torch.zeros_like(spread))


def process_advantages(perception_rewards: torch.Tensor, reasoning_rewards: torch.Tensor,
                       perception_mask: torch.Tensor, group_size: int, *,
                       scale: str = "group") -> torch.Tensor:
    """PA-GRPO's per-token advantages, shape (B, T).

    ``perception_rewards`` and ``reasoning_rewards`` (B,) are each normalised within their
    groups (:func:`group_normalize`); ``perception_mask`` (B, T) is True on each
    completion's perception tokens (:mod:`p2r_train.rl.segments`). Those tokens get the
    perception advantage, all others the reasoning advantage. With equal perception and
    reasoning rewards this is GRPO's advantage on every token.
    """
    if perception_mask.ndim != 2 or perception_mask.shape[0] != perception_rewards.shape[0]:
        raise ValueError(f"perception_mask must be (B, T) with B = {perception_rewards.shape[0]}, "
                         f"got {tuple(perception_mask.shape)}")
    perception = group_normalize(perception_rewards, group_size, scale=scale)
    reasoning = group_normalize(reasoning_rewards, group_size, scale=scale)
    return torch.where(perception_mask.bool(), perception[:, None], reasoning[:, None])

"""process_advantages and group_normalize against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from p2r_train.rl.advantages import collapsed_groups, group_normalize, process_advantages

EPS = 1e-4


def test_group_normalize_matches_hand_computation():
    # group 1: 1, 0, 0, 1 -> mean 0.5, Bessel std sqrt(1/3); group 2: 2, 2, 2, 2 -> all 0
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    std = math.sqrt(((0.5**2) * 4) / 3)
    expected = [0.5 / (std + EPS), -0.5 / (std + EPS), -0.5 / (std + EPS), 0.5 / (std + EPS),
                0, 0, 0, 0]
    assert group_normalize(rewards, 4).tolist() == pytest.approx(expected)


def test_group_normalize_scales():
    rewards = torch.tensor([3.0, 1.0, 0.0, 0.0])
    assert group_normalize(rewards, 2, scale="none").tolist() == [1.0, -1.0, 0.0, 0.0]
    batch_std = torch.tensor([3.0, 1.0, 0.0, 0.0]).std().item()
    assert group_normalize(rewards, 2, scale="batch").tolist() == pytest.approx(
        [1 / (batch_std + EPS), -1 / (batch_std + EPS), 0.0, 0.0])
    with pytest.raises(ValueError, match="scale"):
        group_normalize(rewards, 2, scale="global")
    with pytest.raises(ValueError, match="multiple of 3"):
        group_normalize(rewards, 3)


def test_unknown_rewards_are_left_out_and_get_no_advantage():
    # NaN (no judge verdict): the group's stats come from 1, 0, 1 only
    rewards = torch.tensor([1.0, float("nan"), 0.0, 1.0])
    mean, std = 2 / 3, math.sqrt(((1 / 3) ** 2 * 2 + (2 / 3) ** 2) / 2)
    expected = [(1 - mean) / (std + EPS), 0.0, (0 - mean) / (std + EPS), (1 - mean) / (std + EPS)]
    assert group_normalize(rewards, 4).tolist() == pytest.approx(expected)


def test_collapsed_groups_are_those_with_equal_rewards():
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.2, 0.2, float("nan"), 0.0])
    assert collapsed_groups(rewards, 2).tolist() == [True, False, True, True]


def test_process_advantages_hand_computed():
    # two groups of two; completion i has perception_tokens[i] perception tokens out of 4
    perception = torch.tensor([1.0, 0.0, 1.0, 1.0])
    reasoning = torch.tensor([0.0, 2.0, 1.0, 3.0])
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]]).bool()
    std_p = math.sqrt(0.5)  # 1, 0 -> std of two values differing by 1
    std_r = math.sqrt(2.0)  # 0, 2 and 1, 3 -> std sqrt(2)
    a_p = [0.5 / (std_p + EPS), -0.5 / (std_p + EPS), 0.0, 0.0]
    a_r = [-1 / (std_r + EPS), 1 / (std_r + EPS), -1 / (std_r + EPS), 1 / (std_r + EPS)]
    expected = [
        [a_p[0], a_p[0], a_r[0], a_r[0]],
        [a_p[1], a_r[1], a_r[1], a_r[1]],
        [a_p[2], a_p[2], a_p[2], a_r[2]],
        [a_r[3], a_r[3], a_r[3], a_r[3]],
    ]
    result = process_advantages(perception, reasoning, mask, 2)
    assert result.shape == (4, 4)
    assert result.tolist() == [pytest.approx(row) for row in expected]


def test_identical_process_rewards_give_grpo_advantages():
    generator = torch.Generator().manual_seed(0)
    rewards = torch.rand(12, generator=generator)
    mask = torch.rand(12, 9, generator=generator) > 0.5
    grpo = group_normalize(rewards, 4)
    pa = process_advantages(rewards, rewards.clone(), mask, 4)
    assert torch.equal(pa, grpo[:, None].expand(12, 9))


def test_process_advantages_checks_the_mask_shape():
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        process_advantages(torch.zeros(4), torch.zeros(4), torch.zeros(3, 5).bool(), 2)

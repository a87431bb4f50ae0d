"""PA-GRPO's reward components, the perception judge (real SDK, local fake server) and the
ablation switches: each changes what it should and nothing else."""

from __future__ import annotations

import math

import pytest
import torch
from judge_server import FakeJudgeServer
from p2r_train.rl.advantages import group_normalize
from p2r_train.rl.rewards import (
    AGNOSTIC_COMPONENTS,
    PERCEPTION_COMPONENTS,
    REASONING_COMPONENTS,
    PerceptionJudge,
    RewardDesign,
    answer_accuracy_reward,
    gate_length_bonus,
    length_reward,
    pending_perception,
    perception_format_reward,
    reasoning_format_reward,
    score_completions,
    template_format_reward,
)
from p2r_train.rl.segments import ProcessSplit, span_table
from training_support import OPTIONS, fake_server_judge

from p2r_eval.core.answer_types import reward_rule
from p2r_eval.core.items import Item
from p2r_eval.core.scoring import extract_answer
from p2r_eval.core.template import parse

GOOD = "<observation>A red ball rolls left.</observation><think>So A.</think><answer>A</answer>"


def item(answer_type: str = "multiple choice", answer: str = "A") -> Item:
    options = tuple(OPTIONS) if answer_type == "multiple choice" else ()
    return Item("unit", "1", "What moves across the room?", options, answer, answer_type, None)


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with FakeJudgeServer() as running:
        yield running


@pytest.mark.parametrize(("text", "perception", "reasoning"), [
    (GOOD, 1.0, 1.0),
    ("<observation>x</observation>\n<think>y</think>\n<answer>A</answer>", 1.0, 1.0),
    ("<think>y</think><answer>A</answer>", 0.0, 1.0),  # no observation: reasoning still fine
    ("<observation> </observation><think>y</think><answer>A</answer>", 0.0, 1.0),  # empty
    ("<think>y</think><observation>x</observation><answer>A</answer>", 0.0, 0.0),  # not first
    ("Hello <observation>x</observation><think>y</think><answer>A</answer>", 0.0, 0.0),
    ("<observation>x</observation><observation>z</observation><think>y</think>"
     "<answer>A</answer>", 0.0, 1.0),  # duplicate observation
    ("<observation>x</observation><answer>A</answer><think>y</think>", 1.0, 0.0),  # misordered
    ("<observation>x</observation><think>y</think>", 1.0, 0.0),  # no answer
    ("<observation>x</observation><think>y<answer>A</answer></think>", 1.0, 0.0),  # nested
    ("<observation>x</observation><think>y</think><answer>A</answer> and more", 1.0, 0.0),
    ("<observation>x is cut off", 0.0, 0.0),
])
def test_format_rewards_per_process(text, perception, reasoning):
    segments = parse(text)
    assert perception_format_reward(segments) == perception
    assert reasoning_format_reward(segments) == reasoning
    assert template_format_reward(segments) == (1.0 if perception and reasoning else 0.0)


@pytest.mark.parametrize(("answer_type", "answer", "output"), [
    ("multiple choice", "A", GOOD),
    ("multiple choice", "B", GOOD),
    ("numerical", "3", "<answer>3.0</answer>"),
    ("regression", "10", "<think>t</think><answer>8</answer>"),
    ("free-form", "a red ball rolls", "<answer>the red ball rolled</answer>"),
    ("OCR", "STOP HERE", "<answer>STOP THERE</answer>"),
])
def test_reasoning_accuracy_is_the_scoring_rule(answer_type, answer, output):
    rule = reward_rule(answer_type)
    expected = rule(extract_answer(output), answer)
    assert answer_accuracy_reward(output, item(answer_type, answer)) == expected
    assert answer_accuracy_reward("<answer>A</answer>", item()) == 1.0


def test_length_bonus_is_gated_on_correctness():
    design = RewardDesign()
    assert length_reward(200, (128, 320), 1.0, design) == 0.2
    assert length_reward(200, (128, 320), 0.0, design) == 0.0  # wrong: no bonus
    assert length_reward(100, (128, 320), 1.0, design) == 0.0  # out of range
    assert length_reward(320, (128, 320), 0.5, design) == 0.2  # bounds inclusive
    assert math.isnan(length_reward(200, (128, 320), math.nan, design))


def test_design_switches_and_their_conflicts():
    assert RewardDesign().components == PERCEPTION_COMPONENTS + REASONING_COMPONENTS
    assert RewardDesign(process_agnostic=True).components == AGNOSTIC_COMPONENTS
    assert not RewardDesign(process_agnostic=True).needs_judge
    assert not RewardDesign(perception_accuracy=False, length=False).needs_judge
    assert RewardDesign(perception_accuracy=False).needs_judge  # the length gate needs it
    assert RewardDesign(process_agnostic=True).agnostic_length_range == (448, 832)
    with pytest.raises(ValueError, match="implied"):
        RewardDesign(process_agnostic=True, separate_processes=False)
    with pytest.raises(ValueError, match="no perception reward"):
        RewardDesign(process_agnostic=True, perception_accuracy=False)


def test_perception_judge_on_the_fake_server(server):
    judge = PerceptionJudge(fake_server_judge(server))
    observations = ["A red ball rolls to the right.", "A blue car parks.", None, "  "]
    future = judge.submit([item()] * 4, observations)
    assert future.result(timeout=60) == [1.0, 0.0, 0.0, 0.0]
    assert server.model_calls() == 2  # no call for a missing or blank observation
    judge.close()


def test_failed_judgement_is_unknown_not_zero(server):
    server.faults.extend(["400", "400"])  # the batch call, then the single retry
    judge = PerceptionJudge(fake_server_judge(server))
    assert math.isnan(judge.scores([item()], ["A red ball rolls."])[0])
    assert judge.failures == 1
    judge.close()


# -- the switches on one hand-made batch --------------------------------------------------------
# Two groups of two completions; each component varies within a group.
BATCH = [
    ("<observation>A red ball rolls.</observation><think>t</think><answer>A</answer>", 200, 400),
    ("<observation>A box.</observation><think>t</think><answer>B</answer>", 60, 400),
    ("<think>t</think><answer>A</answer>", 0, 350),
    ("<observation>A red ball.</observation><think>t</think><answer>A</answer> extra", 150, 90),
]


def table_for(design, judge=None):
    from p2r_train.rl.pa_grpo import design_advantages  # imported here, as TRL: quick collection

    texts = [text for text, _, _ in BATCH]
    splits = [ProcessSplit.leading(p, p + r) for _, p, r in BATCH]
    items = [item()] * len(BATCH)
    pending = pending_perception(judge, design, items, texts)
    table = score_completions(items, texts, splits, design, pending)
    rewards = torch.tensor([table.columns[name] for name in design.components]).T
    return table, rewards, design_advantages(rewards, design, span_table(splits), 600, 2)


def test_default_table_hand_checked(server):
    table, _, advantages = table_for(RewardDesign(), PerceptionJudge(fake_server_judge(server)))
    assert table.columns == {
        "perception_accuracy": [1.0, 0.0, 0.0, 1.0],
        "perception_format": [1.0, 1.0, 0.0, 1.0],
        "perception_length": [0.2, 0.0, 0.0, 0.2],
        "reasoning_accuracy": [1.0, 0.0, 1.0, 1.0],
        "reasoning_format": [1.0, 1.0, 1.0, 0.0],
        "reasoning_length": [0.2, 0.0, 0.2, 0.0],
    }
    assert advantages.shape == (4, 600)
    # completion 0: its 200 perception tokens carry the perception advantage
    perception = group_normalize(torch.tensor([2.2, 1.0, 0.0, 2.2]), 2)
    reasoning = group_normalize(torch.tensor([2.2, 1.0, 2.2, 1.0]), 2)
    assert advantages[0, :200].unique().item() == pytest.approx(perception[0].item())
    assert advantages[0, 200:].unique().item() == pytest.approx(reasoning[0].item())
    assert advantages[2].unique().item() == pytest.approx(reasoning[2].item())  # no observation


@pytest.mark.parametrize(("switch", "changed"), [
    ({"reasoning_accuracy": False}, {"reasoning"}),
    ({"perception_accuracy": False}, {"perception"}),
    ({"length": False}, {"perception", "reasoning"}),
])
def test_each_reward_switch_changes_only_its_process(server, switch, changed):
    from p2r_train.rl.pa_grpo import process_rewards

    judge = PerceptionJudge(fake_server_judge(server))
    base_table, base_rewards, base = table_for(RewardDesign(), judge)
    design = RewardDesign(**switch)
    table, rewards, advantages = table_for(design, judge)
    assert table.columns == base_table.columns  # still computed and logged
    off = {name for name in design.components if design.weight(name) == 0}
    expected_off = {"reasoning_accuracy": {"reasoning_accuracy"},
                    "perception_accuracy": {"perception_accuracy"},
                    "length": {"perception_length", "reasoning_length"}}[next(iter(switch))]
    assert off == expected_off
    new_p, new_r = process_rewards(rewards, design)
    old_p, old_r = process_rewards(base_rewards, RewardDesign())
    assert torch.equal(new_p, old_p) == ("perception" not in changed)
    assert torch.equal(new_r, old_r) == ("reasoning" not in changed)
    counts = [p for _, p, _ in BATCH]
    perception_cells = torch.stack([advantages[i, :counts[i]].sum() for i in range(4)])
    base_cells = torch.stack([base[i, :counts[i]].sum() for i in range(4)])
    assert torch.equal(perception_cells, base_cells) == ("perception" not in changed)
    reasoning_cells = torch.stack([advantages[i, counts[i]:].sum() for i in range(4)])
    base_reasoning = torch.stack([base[i, counts[i]:].sum() for i in range(4)])
    assert torch.equal(reasoning_cells, base_reasoning) == ("reasoning" not in changed)


def test_no_separation_sums_the_processes_into_one_advantage(server):
    from p2r_train.rl.pa_grpo import process_rewards

    judge = PerceptionJudge(fake_server_judge(server))
    _, base_rewards, _ = table_for(RewardDesign(), judge)
    _, rewards, advantages = table_for(RewardDesign(separate_processes=False), judge)
    assert torch.equal(rewards, base_rewards)
    perception, reasoning = process_rewards(base_rewards, RewardDesign())
    assert advantages.shape == (4,)
    assert torch.equal(advantages, group_normalize(perception + reasoning, 2))


def test_process_agnostic_is_plain_grpo_without_a_judge():
    design = RewardDesign(process_agnostic=True)
    table, rewards, advantages = table_for(design, judge=None)
    assert table.columns == {
        "accuracy": [1.0, 0.0, 1.0, 1.0],
        "format": [1.0, 1.0, 0.0, 0.0],
        "length": [0.2, 0.0, 0.0, 0.0],  # 600 and 460 tokens in range, gated on accuracy
    }
    assert advantages.shape == (4,)
    assert torch.equal(advantages, group_normalize(rewards.sum(1), 2))


def test_a_judge_is_required_when_the_design_needs_one():
    with pytest.raises(ValueError, match="needs a judge"):
        pending_perception(None, RewardDesign(), [item()], [GOOD])
    assert pending_perception(None, RewardDesign(perception_accuracy=False, length=False),
                              [item()], [GOOD]) is None


def test_length_bonus_needs_more_than_one_correct_completion_in_the_group():
    # Video-R1's length control: in a group with a single correct completion, no bonus
    design = RewardDesign(process_agnostic=True)  # accuracy, format, length
    rewards = torch.tensor([[1.0, 1, 0.2], [0, 1, 0],         # one correct: bonus dropped
                            [1.0, 1, 0.2], [0.5, 1, 0],       # two correct: bonus kept
                            [1.0, 0, 0.2], [0.05, 0, 0]])     # 0.05 is not correct (<= 0.1)
    gated = gate_length_bonus(rewards, design, 2)
    assert gated[:, 2].tolist() == pytest.approx([0, 0, 0.2, 0, 0, 0])
    assert torch.equal(gated[:, :2], rewards[:, :2]) and rewards[0, 2] == 0.2


def test_length_bonus_group_rule_per_process():
    design = RewardDesign()
    names = list(design.components)
    rows = []
    for sufficient, accurate in ((1, 1), (1, 0), (0, 1), (float("nan"), 1)):
        row = dict.fromkeys(names, 1.0)
        row.update(perception_accuracy=sufficient, reasoning_accuracy=accurate,
                   perception_length=0.2 if sufficient == 1 else sufficient,
                   reasoning_length=0.2 * accurate)
        rows.append([row[name] for name in names])
    gated = gate_length_bonus(torch.tensor(rows), design, 2)
    perception, reasoning = names.index("perception_length"), names.index("reasoning_length")
    assert gated[:2, perception].tolist() == pytest.approx([0.2, 0.2])  # both sufficient
    assert gated[:2, reasoning].tolist() == [0, 0]  # one accurate answer only
    assert gated[2:, reasoning].tolist() == pytest.approx([0.2, 0.2])
    assert gated[2, perception] == 0 and gated[3, perception].isnan()  # unknown stays unknown

"""GRPO and PA-GRPO on the demo model with real videos: runs, video in every forward, the
vision encoder once per prompt, per-token advantages, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from judge_server import FakeJudgeServer
from p2r_train.inputs.collate import RolloutCollator
from p2r_train.inputs.data import rl_rows, to_dataset
from p2r_train.inputs.vision import placeholder_token_ids, vision_tower
from p2r_train.rl.advantages import group_normalize
from p2r_train.rl.rewards import RewardDesign
from p2r_train.rl.segments import ProcessSplit, span_table
from training_support import (
    TEST_POLICY,
    fake_server_judge,
    grpo_config,
    rl_record,
    write_clips,
)

from p2r_eval.media.requests import RequestBuilder

PA_METRICS = ("rewards/perception/mean", "rewards/reasoning/mean", "collapse/perception",
              "collapse/reasoning", "collapse/total", "tokens/perception", "tokens/reasoning",
              "judge/failures", "rewards/perception_accuracy/mean",
              "rewards/reasoning_accuracy/mean", "reward_std/perception",
              "reward_std/reasoning", "frac_reward_zero_std")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grpo-media")
    write_clips(folder, 3)
    return folder


@pytest.fixture(scope="module")
def rows(media):
    return rl_rows([rl_record(0, "clip0.mp4"), rl_record(1, "clip1.mp4")], media)


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with FakeJudgeServer() as running:
        yield running


def make_trainer(model_dir, rows, output, *, design=None, judge=None, freeze_vision=False,
                 **overrides):
    from p2r_train.rl.pa_grpo import PAGRPOTrainer  # imported here, as TRL: collection stays quick
    from transformers import AutoProcessor

    return PAGRPOTrainer(
        str(model_dir), grpo_config(output, **overrides), to_dataset(rows),
        AutoProcessor.from_pretrained(model_dir), builder=RequestBuilder("p2r", TEST_POLICY),
        design=design or RewardDesign(process_agnostic=True), judge=judge,
        freeze_vision=freeze_vision)


class EncoderCalls:
    """Records the videos (grid rows) and pixels each vision-encoder call receives."""

    def __init__(self, model):
        self.videos: list[int] = []
        self.pixels: list[torch.Tensor] = []
        vision_tower(model).register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        self.pixels.append(args[0].detach().clone())
        self.videos.append(int(kwargs["grid_thw"].shape[0]))


def first_batch(trainer):
    """The first training micro-batch, through the real rollout (generation and scoring)."""
    trainer.model.train()
    generation_rows = [trainer.train_dataset[i] for i in (0, 0, 1, 1)]
    return trainer._prepare_inputs(trainer.data_collator(generation_rows))


@pytest.mark.parametrize("design", ["grpo", "pa-grpo"])
@pytest.mark.slow
def test_two_steps_with_video(model_dir, rows, tmp_path, server, design):
    pa = design == "pa-grpo"
    trainer = make_trainer(model_dir, rows, tmp_path / design,
                           design=RewardDesign() if pa else None,
                           judge=fake_server_judge(server) if pa else None)
    calls = EncoderCalls(trainer.model)
    trainer.train()
    assert trainer.state.global_step == 2
    logged = trainer.state.log_history[0]
    expected = PA_METRICS if pa else ("rewards/accuracy/mean", "collapse/total",
                                      "tokens/perception", "reward_std", "frac_reward_zero_std")
    assert all(key in logged for key in expected), sorted(logged)
    assert ("reward_std" in logged) is not pa  # PA-GRPO normalises two rewards, not their sum
    # the random model writes no think and answer to compare: no mismatch rate, never None
    for entry in trainer.state.log_history:
        assert "think_answer_mismatch" not in entry
        assert [key for key, value in entry.items() if value is None] == []
    # 4 completions of 2 prompts a step: every encoder call sees at most the 2 distinct videos
    assert calls.videos and max(calls.videos) == 2


@pytest.mark.slow
def test_frozen_vision_tower_encodes_once_per_prompt_per_step(model_dir, rows, tmp_path):
    trainer = make_trainer(model_dir, rows, tmp_path / "frozen", freeze_vision=True, beta=0.04)
    calls = EncoderCalls(trainer.model)
    trainer.train()
    # generation, reference and training forwards all reuse the rollout's features
    assert calls.videos == [2, 2]


def test_policy_and_reference_attend_vision_windows_grouped(model_dir, rows, tmp_path):
    from p2r_eval.models.vision_windows import grouped_attention_modules

    trainer = make_trainer(model_dir, rows, tmp_path / "windows", max_steps=1, beta=0.04)
    depth = trainer.model.config.vision_config.depth
    assert grouped_attention_modules(trainer.model) == depth
    assert grouped_attention_modules(trainer.ref_model) == depth


def test_placeholders_are_suppressed_in_sampling(model_dir, rows, tmp_path):
    trainer = make_trainer(model_dir, rows, tmp_path / "suppress", max_steps=1)
    assert set(placeholder_token_ids(trainer.model.config)) <= set(
        trainer.generation_config.suppress_tokens)
    assert len(placeholder_token_ids(trainer.model.config)) == 4


@pytest.mark.slow
def test_rollout_and_training_forwards_see_the_same_frames(model_dir, rows, media, tmp_path):
    # steps_per_generation 2 > grad accumulation 1: TRL computes old log-probs at rollout time
    trainer = make_trainer(model_dir, rows, tmp_path / "same", steps_per_generation=2,
                           per_device_train_batch_size=2)
    calls = EncoderCalls(trainer.model)
    inputs = first_batch(trainer)
    rollout_pixels = torch.cat([row["rollout"].visual.pixel_values
                                for row in trainer.data_collator([rows[0], rows[1]])])
    assert torch.equal(calls.pixels[0], rollout_pixels)  # generation saw both prompts' frames
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    width = inputs["completion_ids"].shape[1]

    def training_logps(visuals):
        with torch.no_grad(), trainer._visuals(visuals):
            return trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, width)[0]

    valid = inputs["completion_mask"].bool()
    same = training_logps(inputs["visuals"])
    assert torch.allclose(same[valid], inputs["old_per_token_logps"][valid], atol=1e-5)
    other = RolloutCollator(trainer.data_collator.processor, trainer.data_collator.builder)(
        rl_rows([rl_record(0, "clip2.mp4")], media))[0]["rollout"].visual
    changed = training_logps([other] * len(inputs["visuals"]))
    assert not torch.allclose(changed[valid], inputs["old_per_token_logps"][valid], atol=1e-5)


@pytest.mark.slow
def test_changing_the_video_changes_the_training_loss(model_dir, rows, media, tmp_path):
    trainer = make_trainer(model_dir, rows, tmp_path / "loss")
    inputs = first_batch(trainer)
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop
    width = inputs["completion_ids"].shape[1]
    # a batch sampled by an older policy (old log-probs 0) with non-zero advantages: the loss
    # then depends on the current policy's log-probs, hence on what the model sees
    inputs["old_per_token_logps"] = torch.zeros(len(inputs["visuals"]), width)
    inputs["advantages"] = torch.tensor([1.0, -1.0, 0.5, -0.5])
    first = trainer._compute_loss(trainer.model, inputs).item()
    assert trainer._compute_loss(trainer.model, inputs).item() == first
    other = RolloutCollator(trainer.data_collator.processor, trainer.data_collator.builder)(
        rl_rows([rl_record(0, "clip2.mp4")], media))[0]["rollout"].visual
    swapped = {**inputs, "visuals": [other] * len(inputs["visuals"])}
    assert trainer._compute_loss(trainer.model, swapped).item() != first


def test_pa_grpo_batch_carries_per_token_advantages(model_dir, rows, tmp_path, server):
    from p2r_train.rl.pa_grpo import design_advantages

    trainer = make_trainer(model_dir, rows, tmp_path / "pa", design=RewardDesign(),
                           judge=fake_server_judge(server))
    inputs = first_batch(trainer)
    assert inputs["advantages"].shape == inputs["completion_ids"].shape
    # the trainer's advantages are design_advantages of its reward table, row for row
    table = trainer.scored_table()
    table.splits = [ProcessSplit.leading(3, 12), ProcessSplit.leading(0, 12),
                    ProcessSplit.leading(5, 12), ProcessSplit.leading(12, 12)]
    rewards = torch.tensor([[1, 1, 0.2, 1, 1, 0], [0, 1, 0, 0, 1, 0],
                            [0, 0, 0, 1, 1, 0.2], [1, 1, 0, 0, 0, 0]])
    advantages = trainer._advantages(table, rewards, 12)
    expected = design_advantages(rewards, RewardDesign(), span_table(table.splits), 12, 2)
    assert torch.equal(advantages, expected)
    assert advantages[0, :3].unique().numel() == 1 and advantages[0, 3:].unique().numel() == 1
    assert advantages[0, 0] != advantages[0, 3]
    # TRL's loss takes the (B, T) tensor as it is: on-policy, loss = -mean_i mean_t A[i, t]
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop
    per_token = torch.arange(inputs["completion_ids"].numel(), dtype=torch.float32).view(
        inputs["completion_ids"].shape) / 10
    loss = trainer._compute_loss(trainer.model, {**inputs, "advantages": per_token})
    mask = inputs["completion_mask"].float()
    expected = -((per_token * mask).sum(1) / mask.sum(1)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


# perception totals 2.2, 1 | 2, 1 and reasoning totals 2, 1 | 1, 2: the second group's summed
# reward is constant (TRL: advantage 0) while both of its processes vary
MIXED_REWARDS = torch.tensor([[1, 1, 0.2, 1, 1, 0], [0, 1, 0, 0, 1, 0],
                              [1, 1, 0, 0, 1, 0], [0, 1, 0, 1, 1, 0]])
MIXED_SPLITS = [ProcessSplit.leading(3, 12), ProcessSplit.leading(0, 12),
                ProcessSplit.leading(5, 12), ProcessSplit.leading(12, 12)]


def log_advantages_of(trainer, rewards, splits):
    """What the trainer logs for a batch with these rewards, after TRL's values."""
    metrics = trainer._metrics["train"]
    metrics.clear()
    metrics["reward_std"].append(-1.0)  # TRL's, of the summed reward
    metrics["frac_reward_zero_std"].append(-1.0)
    trainer._logs["advantages"].extend([-1.0] * len(splits))
    table = trainer.scored_table()
    table.splits = splits
    trainer._log_advantages(rewards, trainer._gathered_lengths(table))
    return metrics


@pytest.mark.slow
def test_logged_spread_and_advantages_are_those_used(model_dir, rows, tmp_path, server):
    trainer = make_trainer(model_dir, rows, tmp_path / "logs", design=RewardDesign(),
                           judge=fake_server_judge(server))
    first_batch(trainer)
    metrics = log_advantages_of(trainer, MIXED_REWARDS, MIXED_SPLITS)
    perception, reasoning = torch.tensor([2.2, 1, 2, 1]), torch.tensor([2.0, 1, 1, 2])
    assert "reward_std" not in metrics
    assert metrics["reward_std/perception"] == [pytest.approx(perception.std().item())]
    assert metrics["reward_std/reasoning"] == [pytest.approx(reasoning.std().item())]
    assert metrics["frac_reward_zero_std"] == [0.0]  # TRL's summed reward says 0.5
    used = trainer._advantages(trainer.scored_table(), MIXED_REWARDS, 12)  # 12 tokens each
    logged = list(trainer._logs["advantages"])[-4:]
    assert logged == pytest.approx(used.mean(dim=1).tolist())
    assert logged[2] != 0 and logged[3] != 0
    for name, values in (("perception", perception), ("reasoning", reasoning)):
        column = list(trainer._logs["extra"][f"advantage/{name}"])[-4:]
        assert column == pytest.approx(group_normalize(values, 2).tolist())
    assert used[0, 0].item() == pytest.approx(group_normalize(perception, 2)[0].item())


def test_full_collapse_is_warned_about(model_dir, rows, tmp_path, caplog):
    trainer = make_trainer(model_dir, rows, tmp_path / "collapse")
    with caplog.at_level("WARNING", logger="p2r_train.rl.pa_grpo"):
        first_batch(trainer)  # the random model: no completion earns any reward
    assert {value for column in trainer.scored_table().columns.values() for value in column} == {0}
    assert "100% advantage collapse" in caplog.text
    caplog.clear()
    splits = [ProcessSplit.leading(0, 12)] * 4
    with caplog.at_level("WARNING", logger="p2r_train.rl.pa_grpo"):
        metrics = log_advantages_of(trainer, torch.tensor([[1.0, 0, 0], [0, 0, 0]] * 2), splits)
    assert metrics["frac_reward_zero_std"] == [0.0] and not caplog.records
    # accuracy 1 and format 1: each group's two completions get the same reward
    with caplog.at_level("WARNING", logger="p2r_train.rl.pa_grpo"):
        metrics = log_advantages_of(trainer, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]] * 2),
                                    splits)
    assert metrics["frac_reward_zero_std"] == [1.0] and metrics["reward_std"] == [0.0]
    assert "100% advantage collapse" in caplog.text and "gradient is zero" in caplog.text


@pytest.mark.slow
def test_resume_from_a_checkpoint(model_dir, rows, tmp_path):
    output = tmp_path / "resume"
    make_trainer(model_dir, rows, output, save_strategy="steps", save_steps=1).train()
    assert (output / "checkpoint-2").is_dir()
    trainer = make_trainer(model_dir, rows, output, max_steps=3)
    trainer.train(resume_from_checkpoint=True)
    assert trainer.state.global_step == 3


def test_the_trl_version_pa_grpo_overrides_is_checked(monkeypatch, model_dir, rows, tmp_path):
    import trl
    from p2r_train.rl.pa_grpo import (
        OVERRIDDEN_TRL_METHODS,
        TESTED_TRL,
        PAGRPOTrainer,
        check_trl_version,
    )
    from trl import GRPOTrainer

    check_trl_version(trl.__version__)  # the installed one is the tested one
    for name in OVERRIDDEN_TRL_METHODS:  # the list names what is overridden, and TRL has it
        assert name in vars(PAGRPOTrainer) and callable(getattr(GRPOTrainer, name))
    for other in ("1.17.0", "1.1.6", "2.16.0", "1.160.0"):
        with pytest.raises(RuntimeError, match=rf"needs TRL 1\.16\.x, found TRL {other}: "
                                               r".*pip install 'trl>=1\.16,<1\.17'"):
            check_trl_version(other)
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    major, minor = TESTED_TRL  # the train extra pins the same minor version
    assert f'train = ["trl>={major}.{minor},<{major}.{minor + 1}"' in pyproject
    monkeypatch.setattr(trl, "__version__", "1.17.0")
    with pytest.raises(RuntimeError, match="found TRL 1.17.0"):
        make_trainer(model_dir, rows, tmp_path / "newer-trl")
    assert not (tmp_path / "newer-trl").exists()

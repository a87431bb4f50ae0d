"""SFT on the demo model with real videos: the loss goes down, the checkpoint evaluates."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from p2r_train.cli import main
from p2r_train.inputs.data import sft_rows
from p2r_train.tracking.checkpoints import newest_complete_checkpoint, resume_target
from training_support import TEST_POLICY, cot_record, write_clips

from p2r_eval.media.video import sample_frames
from p2r_eval.models import DecodingSettings, Request, load_backend
from p2r_eval.models.vision_windows import grouped_attention_modules


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sft-data")
    names = write_clips(folder, 2)
    records = [cot_record(index, name) for index, name in enumerate(names)]
    (folder / "cot.json").write_text(json.dumps(records))
    return folder / "cot.json"


def cpu_config(output, **overrides):
    from p2r_train.sft.trainer import sft_config  # imported here, as TRL: collection stays quick

    settings = {"use_cpu": True, "bf16": False, "report_to": "none", "logging_steps": 1,
                "save_strategy": "no", "gradient_checkpointing": False, "learning_rate": 5e-3,
                "per_device_train_batch_size": 2, "max_steps": 2, "dataloader_num_workers": 0}
    return sft_config(output, **{**settings, **overrides})


@pytest.mark.slow
def test_two_steps_on_a_repeated_batch_lower_the_loss(model_dir, data_file, tmp_path):
    from p2r_train.sft.trainer import build_sft_trainer

    rows = sft_rows(json.loads(data_file.read_text()), data_file.parent)
    trainer = build_sft_trainer(str(model_dir), cpu_config(tmp_path / "run"), rows,
                                policy=TEST_POLICY)
    # the vision windows attended in one call per window size, in training too
    assert grouped_attention_modules(trainer.model) == trainer.model.config.vision_config.depth
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and losses[1] < losses[0]


def test_frozen_vision_tower_stays_fixed(model_dir, data_file, tmp_path):
    from p2r_train.sft.trainer import build_sft_trainer

    rows = sft_rows(json.loads(data_file.read_text()), data_file.parent)
    trainer = build_sft_trainer(str(model_dir), cpu_config(tmp_path / "run", max_steps=1),
                                rows, policy=TEST_POLICY, freeze_vision=True)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    visual = [n for n in before if ".visual." in f".{n}"]
    assert visual and all(torch.equal(before[n], after[n]) for n in visual)
    assert any(not torch.equal(before[n], after[n]) for n in before if n not in visual)


@pytest.mark.slow
def test_cli_checkpoint_loads_in_the_eval_backend(model_dir, data_file, tmp_path):
    output = tmp_path / "sft"
    code = main(["sft", "--model", str(model_dir), "--data", str(data_file), "--output",
                 str(output), "--max-steps", "2", "--batch-size", "2", "--lr", "5e-3",
                 "--frames", "4", "--max-pixels", str(TEST_POLICY.max_pixels), "--cpu",
                 "--report-to", "none", "--dataloader-workers", "0", "--save-steps", "1"])
    assert code == 0
    assert (output / "trainer_state.json").is_file() and (output / "checkpoint-2").is_dir()
    backend = load_backend(str(output), decoding=DecodingSettings(max_new_tokens=8),
                           device="cpu")
    sampled = sample_frames(data_file.parent / "clip0.mp4", 4)
    request = Request("unit", "0", "What moves?", frames=sampled.frames, fps=sampled.sample_fps)
    [output_text] = backend.generate([request])
    assert isinstance(output_text, str)
    trained = backend.model.state_dict()
    reference = load_backend(str(model_dir), decoding=DecodingSettings(max_new_tokens=8),
                             device="cpu").model.state_dict()
    assert any(not np.array_equal(trained[k].numpy(), reference[k].numpy()) for k in trained)


@pytest.mark.slow
def test_resume_restores_the_checkpoint_weights(model_dir, data_file, tmp_path):
    from p2r_train.sft.trainer import build_sft_trainer

    rows = sft_rows(json.loads(data_file.read_text()), data_file.parent)
    output = tmp_path / "run"
    trained = build_sft_trainer(str(model_dir), cpu_config(output, max_steps=1,
                                                           save_strategy="steps", save_steps=1),
                                rows, policy=TEST_POLICY)
    trained.train()
    fresh = build_sft_trainer(str(model_dir), cpu_config(output), rows, policy=TEST_POLICY)
    changed = [n for n, p in trained.model.named_parameters()
               if not torch.equal(p, fresh.model.get_parameter(n))]
    assert changed
    fresh._load_from_checkpoint(str(output / "checkpoint-1"))
    assert all(torch.equal(p, fresh.model.get_parameter(n))
               for n, p in trained.model.named_parameters())


def test_resume_takes_the_newest_complete_checkpoint(tmp_path):
    for step in (2, 10, 11, 12):
        checkpoint = tmp_path / f"checkpoint-{step}"
        checkpoint.mkdir()
        (checkpoint / "config.json").write_text("{}")
        (checkpoint / "model.safetensors").write_bytes(b"weights")
    for step in (2, 10):
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-12" / "trainer_state.json").write_text('{"log_hist')  # cut short
    (tmp_path / "checkpoint-x").mkdir()
    assert newest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert resume_target(True, tmp_path) == str(tmp_path / "checkpoint-10")
    assert resume_target("elsewhere", tmp_path) == "elsewhere"
    assert resume_target(None, tmp_path) is None
    assert resume_target(True, tmp_path / "checkpoint-11") is None  # nothing yet: start over

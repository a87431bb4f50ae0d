"""Every saved checkpoint scored automatically: an SFT run with --eval-tasks."""

from __future__ import annotations

import json

import pytest
from p2r_train.cli import main as p2r_train
from training_support import TEST_POLICY, cot_record, demo_model, write_clips

from p2r_eval.cli.main import main as p2r_eval

pytestmark = pytest.mark.slow

EVAL = ["--tasks", "mvbench", "--limit", "2", "--frames", "4", "--max-new-tokens", "8",
        "--quiet"]


def test_sft_checkpoints_are_evaluated_without_further_commands(tmp_path_factory, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    names = write_clips(folder, 2)
    (folder / "cot.json").write_text(json.dumps([cot_record(i, n) for i, n in enumerate(names)]))
    run_dir = tmp_path / "run"
    code = p2r_train([
        "sft", "--model", str(demo_model(tmp_path_factory)), "--data", str(folder / "cot.json"),
        "--output", str(run_dir), "--max-steps", "2", "--save-steps", "1", "--batch-size", "2",
        "--frames", "4", "--max-pixels", str(TEST_POLICY.max_pixels), "--cpu",
        "--report-to", "none", "--dataloader-workers", "0",
        "--eval-tasks", "mvbench", "--eval-limit", "2", "--eval-frames", "4",
        "--eval-max-new-tokens", "8"])
    assert code == 0
    evaluated = run_dir / "eval"
    starting = json.loads((run_dir / "starting_model.json").read_text())["model"]
    assert starting == str(demo_model(tmp_path_factory))
    for name in ("starting-model", "checkpoint-1", "checkpoint-2"):  # the root is step 2 too
        results = json.loads((evaluated / name / "results.json").read_text())
        assert results["finished_at"] and results["tasks"]["mvbench"]["n"] == 2
    assert sorted(path.name for path in evaluated.iterdir() if path.name.startswith(
        ("checkpoint-", "final-", "starting-"))) == ["checkpoint-1", "checkpoint-2",
                                                     "starting-model"]
    leaderboard = (evaluated / "leaderboards" / "main.md").read_text()
    assert all(f"step {step}" in leaderboard for step in (0, 1, 2))
    assert (evaluated / "scores_by_step.png").stat().st_size > 10_000

    stamps = {step: (evaluated / f"checkpoint-{step}" / "results.json").stat().st_mtime_ns
              for step in (1, 2)}
    assert p2r_eval(["--model", str(run_dir), *EVAL]) == 0
    assert stamps == {step: (evaluated / f"checkpoint-{step}" / "results.json").stat().st_mtime_ns
                      for step in (1, 2)}

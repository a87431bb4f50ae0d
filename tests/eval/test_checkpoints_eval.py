"""p2r-eval on a folder of checkpoint-<step> folders: each evaluated once, a row per step."""

import json
import shutil

import pytest

from p2r_eval.cli.main import main
from p2r_eval.eval.checkpoints import (
    eval_dir,
    is_checkpoint_run,
    list_checkpoints,
    record_starting_model,
    run_models,
)
from p2r_eval.models.demo import ensure_demo_model

pytestmark = pytest.mark.slow

ARGS = ["--tasks", "mvbench,videomme", "--limit", "2", "--frames", "4", "--max-new-tokens", "8",
        "--quiet"]


def make_checkpoint(run_dir, step, finished=True):
    checkpoint = run_dir / f"checkpoint-{step}"
    shutil.copytree(ensure_demo_model(), checkpoint)
    if finished:
        (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return checkpoint


def test_each_checkpoint_is_evaluated_once_and_reported(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    make_checkpoint(run_dir, 1)
    saving = make_checkpoint(run_dir, 2, finished=False)
    assert is_checkpoint_run(run_dir)
    assert [step for step, _ in list_checkpoints(run_dir)] == [1]

    assert main(["--model", str(run_dir), *ARGS]) == 0
    assert (eval_dir(run_dir) / "checkpoint-1" / "results.json").exists()
    assert not (eval_dir(run_dir) / "checkpoint-2").exists()

    (saving / "trainer_state.json").write_text("{}")
    first = (eval_dir(run_dir) / "checkpoint-1" / "samples" / "mvbench.jsonl").read_bytes()
    assert main(["--model", str(run_dir), *ARGS]) == 0
    assert (eval_dir(run_dir) / "checkpoint-1" / "samples" / "mvbench.jsonl").read_bytes() == first
    assert json.loads((eval_dir(run_dir) / "checkpoint-2" / "results.json").read_text())[
        "finished_at"]

    leaderboard = (eval_dir(run_dir) / "leaderboards" / "main.md").read_text()
    assert "step 1" in leaderboard and "step 2" in leaderboard
    assert (eval_dir(run_dir) / "scores_by_step.png").stat().st_size > 10_000

    stamp = (eval_dir(run_dir) / "checkpoint-2" / "results.json").stat().st_mtime_ns
    assert main(["--model", str(run_dir), *ARGS]) == 0
    assert (eval_dir(run_dir) / "checkpoint-2" / "results.json").stat().st_mtime_ns == stamp


def test_output_does_not_apply_to_a_run_folder(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    make_checkpoint(run_dir, 3)
    assert main(["--model", str(run_dir), "--output", str(tmp_path / "x"), *ARGS]) == 2
    assert "do not apply" in capsys.readouterr().err


def test_the_root_model_is_the_final_step_and_the_starting_model_step_0(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    make_checkpoint(run_dir, 2)
    shutil.copytree(ensure_demo_model(), run_dir, dirs_exist_ok=True)  # the final model
    (run_dir / "trainer_state.json").write_text(json.dumps({"global_step": 3}))
    record_starting_model(run_dir, str(ensure_demo_model()))
    assert [(m.step, m.name) for m in run_models(run_dir)] == [
        (0, "starting-model"), (2, "checkpoint-2"), (3, "final-3")]
    assert [m.step for m in run_models(run_dir, every=2)] == [0, 2]

    assert main(["--model", str(run_dir), *ARGS]) == 0
    for name in ("starting-model", "checkpoint-2", "final-3"):
        assert json.loads((eval_dir(run_dir) / name / "results.json").read_text())["finished_at"]
    results = json.loads((eval_dir(run_dir) / "final-3" / "results.json").read_text())
    assert results["model"]["spec"] == str(run_dir)
    leaderboard = (eval_dir(run_dir) / "leaderboards" / "main.md").read_text()
    assert all(f"step {step}" in leaderboard for step in (0, 2, 3))

    # a final model of the same step as a checkpoint is that checkpoint: evaluated once
    (run_dir / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    assert [m.name for m in run_models(run_dir)] == ["starting-model", "checkpoint-2"]


def test_a_run_saved_without_checkpoints_is_a_run(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(ensure_demo_model(), run_dir)
    assert not is_checkpoint_run(run_dir)  # a model folder
    (run_dir / "trainer_state.json").write_text(json.dumps({"global_step": 5}))
    assert is_checkpoint_run(run_dir)
    assert [(m.step, m.model) for m in run_models(run_dir)] == [(5, str(run_dir))]
    (run_dir / "starting_model.json").write_text(json.dumps({"model": str(tmp_path / "gone")}))
    assert main(["--model", str(run_dir), *ARGS]) == 0  # the missing start is skipped
    assert (eval_dir(run_dir) / "final-5" / "results.json").exists()
    assert not (eval_dir(run_dir) / "starting-model" / "results.json").exists()

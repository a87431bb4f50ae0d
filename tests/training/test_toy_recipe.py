"""``p2r-train recipe toy`` at a tiny scale: every step runs for real (the suite, annotate with
the replay teacher and the toy judge, SFT, PA-GRPO and GRPO side by side, three evaluations,
the table and its paired tests), only with a handful of items and steps. Whether the full
recipe *learns* is measured (README), not tested here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from p2r_train.cli import main as train_main
from p2r_train.recipe import final_evaluation

from p2r_eval.eval.runstore import RunStore

TINY = ["--train-items", "10", "--validation-items", "4", "--test-items", "4",
        "--sft-epochs", "1", "--rl-steps", "1", "--rl-generations", "2",
        "--eval-max-new-tokens", "8"]


@pytest.mark.slow
def test_the_recipe_runs_every_step_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("P2R_CACHE", str(tmp_path / "cache"))
    output = tmp_path / "toy"
    assert train_main(["recipe", "toy", "--output", str(output), *TINY]) == 0
    recipe = json.loads((output / "recipe.json").read_text())
    assert list(recipe["steps"]) == ["data", "annotate", "sft", "rl", "eval"]
    assert recipe["steps"]["annotate"]["outcome"] == {
        "kept": 8, "dropped_by_verification": 2, "dropped_by_judge": 0}
    assert "--judge toy" in recipe["steps"]["rl"]["commands"][0]
    assert "--process-agnostic" in recipe["steps"]["rl"]["commands"][1]
    for run in ("sft", "pa-grpo", "grpo"):
        assert (output / run / "model.safetensors").is_file()
        results = RunStore(final_evaluation(output / run)).read_results()
        assert results is not None
        assert results.tasks["toy"].n == 4 and results.tasks["toy"].complete
        assert (output / run / "eval" / "leaderboards" / "toy.md").is_file()
    board = (output / "leaderboards" / "toy.md").read_text()
    for row in ("SFT-only (measured", "PA-GRPO (measured", "GRPO (process-agnostic RL) (measured"):
        assert row in board
    assert board.count("## Paired test:") == 2 and "95% bootstrap" in board
    capsys.readouterr()
    assert train_main(["recipe", "toy", "--output", str(output), *TINY]) == 0
    rerun = capsys.readouterr().out
    assert all(f"[{step}] done before, skipped" in rerun
               for step in ("annotate", "sft", "rl", "eval"))
    other = [*TINY[:-1], "16"]  # another --eval-max-new-tokens
    assert train_main(["recipe", "toy", "--output", str(output), *other]) == 1
    assert "other settings (eval_max_new_tokens)" in capsys.readouterr().err

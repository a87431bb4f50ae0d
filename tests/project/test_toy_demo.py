"""The demo model is the toy recipe's SFT checkpoint: it loads from the package, and on the
demo suite's toy items (the first items of the held-out test split) it writes well-formed
observation/think/answer outputs and scores above zero, through the real p2r-eval command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p2r_eval.cli.main import main
from p2r_eval.eval.runstore import RunStore
from p2r_eval.models import resolve_model
from p2r_eval.models.demo import DEMO_CHECKPOINT, demo_checkpoint


def test_the_demo_model_is_the_committed_toy_sft_checkpoint() -> None:
    assert resolve_model("demo") == str(demo_checkpoint()) == str(DEMO_CHECKPOINT)
    marker = json.loads((DEMO_CHECKPOINT / "p2r_demo.json").read_text())
    assert marker["sft_command"].startswith("p2r_train.cli sft ")
    assert "p2r-train recipe toy" in marker["made_by"]


@pytest.mark.slow
def test_the_demo_model_answers_the_toy_demo_items(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2R_CACHE", str(tmp_path / "cache"))
    output = tmp_path / "run"
    code = main(["--model", "demo", "--tasks", "toy", "--frames", "8", "--max-pixels", "3136",
                 "--max-new-tokens", "96", "--output", str(output), "--quiet"])
    assert code == 0
    results = RunStore(output).read_results()
    assert results is not None and results.tasks["toy"].analysis is not None
    toy = results.tasks["toy"]
    assert toy.n == 8 and toy.n_errors == 0
    assert toy.analysis["well_formed_rate"] >= 0.75
    assert toy.score is not None and toy.score > 0
    assert (output / "leaderboards" / "toy.md").is_file()

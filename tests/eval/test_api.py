"""``p2r_eval.run_eval`` runs exactly what ``p2r-eval`` runs and returns typed results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import p2r_eval
from p2r_eval.cli.main import main as cli_main


@pytest.fixture()
def replay(tmp_path: Path) -> Path:
    path = tmp_path / "outputs.jsonl"
    lines = [{"task": "mvbench", "id": f"item-{index}", "output": "<answer>A</answer>"}
             for index in range(3)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def scores_without_provenance(folder: Path) -> dict:
    results = json.loads((folder / "results.json").read_text())
    return {name: {key: entry[key] for key in ("score", "n", "n_scored", "n_errors")}
            for name, entry in results["tasks"].items()}


def test_the_api_and_the_command_write_the_same_results(tmp_path: Path, replay: Path) -> None:
    run = p2r_eval.run_eval(model=f"replay:{replay}", tasks=["mvbench", "videomme"],
                            output=tmp_path / "api", protocol="official", quiet=True)
    assert cli_main(["--model", f"replay:{replay}", "--tasks", "mvbench,videomme",
                     "--output", str(tmp_path / "cli"), "--protocol", "official",
                     "--quiet"]) == run.exit_code
    api_scores = scores_without_provenance(tmp_path / "api")
    assert api_scores == scores_without_provenance(tmp_path / "cli")
    assert set(run.tasks) == {"mvbench", "videomme"}
    mvbench = run.tasks["mvbench"]
    assert run.results is not None
    assert mvbench.n == run.results.tasks["mvbench"].n > 0
    assert mvbench.n_errors == mvbench.n  # no replay line matches a demo-suite id
    assert run.output == tmp_path / "api"
    assert tmp_path / "api" / "leaderboards" / "main.md" in run.leaderboards
    assert run.results.settings.protocol == "official"


def test_settings_are_validated_by_the_command_parser(tmp_path: Path, replay: Path) -> None:
    with pytest.raises(ValueError, match="unknown setting 'temprature'"):
        p2r_eval.run_eval(model="demo", temprature=0.5)
    with pytest.raises(ValueError, match="invalid choice: 'nope'"):
        p2r_eval.run_eval(model="demo", protocol="nope")
    with pytest.raises(ValueError, match="switch"):
        p2r_eval.run_eval(model="demo", quiet="yes")
    assert not (tmp_path / "runs").exists()


def test_a_second_call_resumes_the_finished_run(tmp_path: Path, replay: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    first = p2r_eval.run_eval(model=f"replay:{replay}", tasks="mvbench", output=tmp_path / "r",
                              quiet=True)
    second = p2r_eval.run_eval(model=f"replay:{replay}", tasks="mvbench", output=tmp_path / "r",
                               quiet=True)
    assert "already finished" in capsys.readouterr().out
    assert second.results == first.results

"""p2r-eval end to end on the demo model and the demo suite: run, resume after kill -9,
replay, exit codes."""

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from killing import run_and_kill

from p2r_eval.benchmarks.registry import paper_task_names
from p2r_eval.cli.main import main

pytestmark = pytest.mark.slow

DEMO_ARGS = ["--model", "demo", "--tasks", "all", "--frames", "4", "--max-new-tokens", "12",
             "--quiet"]


def p2r_eval_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "p2r_eval.cli", *args]


def samples_by_task(run: Path) -> dict[str, list[dict]]:
    return {
        path.stem: [json.loads(line) for line in path.read_text().splitlines()]
        for path in sorted((run / "samples").glob("*.jsonl"))
    }


def comparable(results: dict) -> dict:
    """results.json without what legitimately differs between two runs (times, paths)."""
    tasks = {name: {k: v for k, v in entry.items() if k != "wall_time_s"}
             for name, entry in results["tasks"].items()}
    return {"model": results["model"]["fingerprint"], "tasks": tasks}


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("runs") / "full"
    assert main([*DEMO_ARGS, "--output", str(output)]) == 0
    return output


def test_demo_run_writes_results_for_every_task(uninterrupted_run):
    results = json.loads((uninterrupted_run / "results.json").read_text())
    assert set(results["tasks"]) == set(paper_task_names())
    for name, entry in results["tasks"].items():
        assert entry["n"] > 0 and entry["complete"], name
        lines = (uninterrupted_run / "samples" / f"{name}.jsonl").read_text().splitlines()
        assert len(lines) == entry["n"]
    settings = results["settings"]
    assert settings["protocol"] == "video-r1" and settings["prompt_style"] == "p2r"
    assert settings["frame_policy"]["num_frames"] == 4
    assert results["package"]["version"] and results["finished_at"]
    assert results["model"]["fingerprint"]["weights_sha256"]


def test_finished_run_is_not_redone(uninterrupted_run, capsys):
    before = (uninterrupted_run / "samples" / "mvbench.jsonl").read_text()
    assert main([*DEMO_ARGS, "--output", str(uninterrupted_run)]) == 0
    assert "already finished" in capsys.readouterr().out
    assert (uninterrupted_run / "samples" / "mvbench.jsonl").read_text() == before


def test_killed_run_resumes_to_identical_results(uninterrupted_run, tmp_path):
    output = tmp_path / "killed"
    run_and_kill(p2r_eval_command(*DEMO_ARGS, "--output", str(output)),
                 lambda: _sample_lines(output) >= 5, timeout_s=300, poll_s=0.05)
    written = _sample_lines(output)
    assert written >= 5, "the run was killed before it wrote anything"
    assert main([*DEMO_ARGS, "--output", str(output)]) == 0
    resumed = json.loads((output / "results.json").read_text())
    full = json.loads((uninterrupted_run / "results.json").read_text())
    assert comparable(resumed) == comparable(full)
    for task, samples in samples_by_task(output).items():
        counts = Counter(sample["id"] for sample in samples)
        assert max(counts.values()) == 1, f"{task}: an item was generated twice"
        reference = {s["id"]: s for s in samples_by_task(uninterrupted_run)[task]}
        assert {s["id"]: s["output"] for s in samples} == {
            i: s["output"] for i, s in reference.items()}


def _sample_lines(output: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in (output / "samples").glob("*.jsonl")) \
        if (output / "samples").exists() else 0


def test_replay_rescores_stored_outputs_without_video(uninterrupted_run, tmp_path):
    replay = tmp_path / "outputs.jsonl"
    with replay.open("w") as handle:
        for task, samples in samples_by_task(uninterrupted_run).items():
            for sample in samples:
                handle.write(json.dumps({"task": task, "id": sample["id"],
                                         "output": sample["output"]}) + "\n")
    output = tmp_path / "replayed"
    assert main(["--model", f"replay:{replay}", "--tasks", "all", "--quiet",
                 "--output", str(output)]) == 0
    replayed = json.loads((output / "results.json").read_text())
    full = json.loads((uninterrupted_run / "results.json").read_text())
    for name in paper_task_names():
        assert replayed["tasks"][name]["score"] == full["tasks"][name]["score"]
        assert replayed["tasks"][name]["breakdown"] == full["tasks"][name]["breakdown"]


def test_replay_with_a_correct_answer_scores_it(tmp_path):
    from p2r_eval.benchmarks.registry import load_task

    item = load_task("mvbench").items[0]
    replay = tmp_path / "one.jsonl"
    replay.write_text(json.dumps({"task": "mvbench", "id": item.id,
                                  "output": f"<think>t</think><answer>{item.answer}</answer>"})
                      + "\n")
    output = tmp_path / "run"
    main(["--model", f"replay:{replay}", "--tasks", "mvbench", "--limit", "1", "--quiet",
          "--output", str(output)])
    sample = samples_by_task(output)["mvbench"][0]
    assert sample["score"] == 1.0 and sample["extracted"] == item.answer


def test_every_item_failing_exits_1_and_records_errors(tmp_path):
    replay = tmp_path / "empty.jsonl"
    replay.write_text("")
    output = tmp_path / "run"
    code = main(["--model", f"replay:{replay}", "--tasks", "mvbench", "--limit", "2", "--quiet",
                 "--output", str(output)])
    assert code == 1
    samples = samples_by_task(output)["mvbench"]
    assert len(samples) == 2 and all(s["error"] for s in samples)


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["--model", "demo", "--tasks", "nosuchbench", "--output", str(tmp_path)]) == 2
    assert "nosuchbench" in capsys.readouterr().err
    assert main(["--model", str(tmp_path / "missing"), "--tasks", "mvbench",
                 "--output", str(tmp_path / "o")]) == 2


def test_a_different_model_in_the_same_folder_is_refused(uninterrupted_run, tmp_path, capsys):
    replay = tmp_path / "r.jsonl"
    replay.write_text("")
    code = main(["--model", f"replay:{replay}", "--tasks", "mvbench", "--quiet",
                 "--output", str(uninterrupted_run)])
    assert code == 2
    assert "different model" in capsys.readouterr().err


def test_the_run_is_a_leaderboard_row_with_footnotes_and_intervals(uninterrupted_run):
    board = (uninterrupted_run / "leaderboards" / "main.md").read_text()
    row = next(line for line in board.splitlines() if line.startswith("| demo"))
    assert row.count("|") == 10 and "measured" in row
    assert "input policy uniform, 4 frames" in board and "(paper: video-r1 (2 fps" in board
    assert "95% bootstrap confidence intervals" in board
    assert (uninterrupted_run / "leaderboards" / "main_bars.png").stat().st_size > 10_000


def test_compare_two_demo_runs_prints_a_p_value(uninterrupted_run, tmp_path, capsys):
    from p2r_eval.benchmarks.registry import load_task

    answers = {item.id: item.answer for item in load_task("mvbench").items}
    replay = tmp_path / "better.jsonl"
    with replay.open("w") as handle:
        for sample in samples_by_task(uninterrupted_run)["mvbench"]:
            output = f"<answer>{answers[sample['id']]}</answer>"
            handle.write(json.dumps({"task": "mvbench", "id": sample["id"], "output": output})
                         + "\n")
    better = tmp_path / "better"
    assert main(["--model", f"replay:{replay}", "--tasks", "mvbench", "--quiet",
                 "--output", str(better)]) == 0
    capsys.readouterr()
    assert main(["compare", str(better), str(uninterrupted_run), "--tasks", "mvbench"]) == 0
    printed = capsys.readouterr().out
    assert "p" in printed and "mvbench" in printed.lower().replace("-", "")

"""Run identity and the results it protects (issue 16, items 1 to 8): a run folder resumed,
merged, compared or ranked only with the inputs that made it; demo-suite and partial scores
never shown as paper-comparable; a deleted folder, a damaged frame cache, a judge reply without
a verdict, a killed merge and a bad ``--limit`` never give a wrong number with exit 0.

Each test reproduces the failure the issue reports (it failed before the fix), with real
components: the ``replay:`` backend over real annotation files, real PyAV videos, the real
openai SDK against the local judge server.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from p2r_eval.benchmarks.registry import load_task, paper_task_names
from p2r_eval.cli.main import main
from p2r_eval.eval.loop import EvalSettings, run_evaluation
from p2r_eval.eval.runstore import RunStore, RunStoreError
from p2r_eval.media import synthetic_media
from p2r_eval.media.frame_cache import FrameCache
from p2r_eval.media.video import FramePolicy, sample_frames
from p2r_eval.models.replay import ReplayBackend

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from judge_server import NO_VERDICT_REPLIES, FakeJudgeServer

KEY = "test-key"


@pytest.fixture(autouse=True)
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2R_HUB", "0")


def mvbench_records(count: int, *, question: str = "Which way does object {i} move?",
                    shift: int = 0) -> list[dict[str, Any]]:
    """Video-R1 format MVBench records with ids 1..count; ``shift`` rotates the answer key."""
    return [{"problem_id": i, "problem": question.format(i=i), "data_type": "video",
             "problem_type": "multiple choice", "options": ["A. left", "B. right", "C. up"],
             "solution": f"<answer>{'ABC'[(i + shift) % 3]}</answer>",
             "path": f"./Evaluation/MVBench/ssv2_video/{i}.mp4"}
            for i in range(1, count + 1)]


def write_root(root: Path, records: list[dict[str, Any]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "eval_mvbench.json").write_text(json.dumps(records))
    return root


def write_replay(path: Path, task: str, ids: list[Any], answer: str = "A") -> Path:
    lines = [json.dumps({"task": task, "id": i, "output": f"<think>t</think><answer>{answer}"
                                                           "</answer>"}) for i in ids]
    path.write_text("\n".join(lines) + "\n")
    return path


def replay_args(replay: Path, output: Path, *extra: str) -> list[str]:
    return ["--model", f"replay:{replay}", "--quiet", "--output", str(output), *extra]


def read_results(run: Path) -> dict[str, Any]:
    return json.loads((run / "results.json").read_text())


# -- 1. changed data, stale results --------------------------------------------------------------
def test_a_changed_answer_key_or_data_root_is_refused_not_resumed(tmp_path, capsys):
    root = write_root(tmp_path / "data", mvbench_records(30))
    replay = write_replay(tmp_path / "replay.jsonl", "mvbench", list(range(1, 31)))
    output = tmp_path / "run"
    args = replay_args(replay, output, "--tasks", "mvbench", "--data-root", str(root))
    assert main(args) == 0
    finished = (output / "results.json").read_text()

    write_root(root, mvbench_records(30, shift=1))  # the answer key changed
    capsys.readouterr()
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "already finished" not in error and "mvbench" in error and "data" in error
    assert (output / "results.json").read_text() == finished

    # the demo suite (no --data-root) into the folder of a data-root run
    assert main(replay_args(replay, output, "--tasks", "mvbench")) == 2
    assert "data" in capsys.readouterr().err
    # an unfinished run is not resumed on changed data either
    (output / "results.json").write_text(finished.replace('"finished_at": "', '"was": "'))
    assert main(args) == 2
    assert (output / "samples" / "mvbench.jsonl").read_text().count("\n") == 30


def test_the_same_data_in_another_folder_resumes(tmp_path, capsys):
    """Identity is the data's content, not where it lies: a copied data root resumes."""
    root = write_root(tmp_path / "data", mvbench_records(12))
    replay = write_replay(tmp_path / "replay.jsonl", "mvbench", list(range(1, 13)))
    output = tmp_path / "run"
    assert main(replay_args(replay, output, "--tasks", "mvbench", "--data-root", str(root),
                            "--limit", "5")) == 0
    copy = shutil.copytree(root, tmp_path / "copy")
    assert main(replay_args(replay, output, "--tasks", "mvbench", "--data-root", str(copy))) == 0
    assert read_results(output)["tasks"]["mvbench"]["n"] == 12


# -- 2. compare pairs items by content, not by id alone ---------------------------------------
def test_compare_refuses_to_pair_different_items_that_share_an_id(tmp_path, capsys):
    demo_ids = [item.id for item in load_task("mvbench").items]
    other = [{**record, "problem_id": demo_id} for record, demo_id
             in zip(mvbench_records(len(demo_ids), question="Unrelated question {i}?"),
                    demo_ids, strict=True)]
    root = write_root(tmp_path / "data", other)
    replay = write_replay(tmp_path / "replay.jsonl", "mvbench", demo_ids)
    demo_run, data_run = tmp_path / "demo", tmp_path / "real"
    assert main(replay_args(replay, demo_run, "--tasks", "mvbench")) == 0
    assert main(replay_args(replay, data_run, "--tasks", "mvbench", "--data-root", str(root))) == 0
    capsys.readouterr()
    assert main(["compare", str(demo_run), str(data_run), "--tasks", "mvbench"]) == 2
    error = capsys.readouterr().err
    assert "paired" not in error or "no item" in error
    assert f"{len(demo_ids)} items share an id but differ in content" in error


def test_compare_names_different_data_among_the_differences(tmp_path, capsys):
    records = mvbench_records(20)
    root = write_root(tmp_path / "data", records)
    changed = write_root(tmp_path / "changed", records[:10] + mvbench_records(20)[10:15]
                         + mvbench_records(20, question="Other {i}?")[15:])
    replay = write_replay(tmp_path / "replay.jsonl", "mvbench", list(range(1, 21)))
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    assert main(replay_args(replay, run_a, "--tasks", "mvbench", "--data-root", str(root))) == 0
    assert main(replay_args(replay, run_b, "--tasks", "mvbench", "--data-root", str(changed))) == 0
    capsys.readouterr()
    assert main(["compare", str(run_a), str(run_b), "--resamples", "200"]) == 0
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.startswith("| MVBench"))
    assert row.split("|")[2].strip() == "15"
    assert "5 items share an id but differ in content" in printed
    assert "data of mvbench" in printed.split("Settings differ")[1]


# -- 3. demo-suite rows and partial tasks are marked everywhere ---------------------------------
def demo_replay(path: Path) -> Path:
    lines = [json.dumps({"task": name, "id": item.id, "output": "<answer>A</answer>"})
             for name in paper_task_names() for item in load_task(name).items]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_demo_suite_rows_and_partial_tasks_are_never_shown_as_paper_rows(tmp_path, capsys):
    from p2r_eval.report.leaderboard import measured_bar_series
    from p2r_eval.report.measured import measured_rows
    from p2r_eval.report.tables import load_table

    output = tmp_path / "demo"
    assert main(replay_args(demo_replay(tmp_path / "all.jsonl"), output, "--tasks", "all")) == 0
    printed = capsys.readouterr().out
    assert "demo suite" in printed
    vcr = read_results(output)["tasks"]["vcrbench"]
    assert vcr["score"] is not None and vcr["n_scored"] < vcr["n"]  # judge-graded items wait

    board = (output / "leaderboards" / "main.md").read_text()
    row = next(line for line in board.splitlines() if line.startswith("| replay:all"))
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert "demo suite" in cells[0]
    assert cells[-1] == "-"  # no Avg
    assert "**" not in row and "<u>" not in row  # ranks against no paper row
    vcr_cell = cells[1 + [c.task for c in load_table("main").columns].index("vcrbench")]
    assert vcr_cell.startswith("(") and "partial" in board
    assert "demo suite" in board.split("Notes:")[1]

    table = load_table("main")
    series = measured_bar_series(table, measured_rows([output], None, 100, 0)[0])
    vcr_index = [c.task for c in table.columns].index("vcrbench")
    assert "demo suite" in series.label
    assert series.values[vcr_index] is None and series.values[-1] is None


# -- 4. the output folder deleted mid-run --------------------------------------------------------
class DeletingReplay(ReplayBackend):
    """The replay backend; deletes the run folder when the ``at``-th item is generated."""

    def __init__(self, path: Path, folder: Path, at: int) -> None:
        super().__init__(path)
        self.folder, self.at, self.generated = folder, at, 0

    def generate(self, requests):  # the backend interface
        self.generated += len(requests)
        if self.generated == self.at:
            shutil.rmtree(self.folder)
        return super().generate(requests)


def test_a_run_folder_deleted_mid_run_stops_the_run_and_is_not_recreated(tmp_path):
    root = write_root(tmp_path / "data", mvbench_records(200))
    replay = write_replay(tmp_path / "replay.jsonl", "mvbench", list(range(1, 201)))
    output = tmp_path / "run"
    settings = EvalSettings(model_spec=f"replay:{replay}", tasks=("mvbench",), data_root=root)
    with pytest.raises(RunStoreError, match="deleted or replaced"):
        run_evaluation(settings, DeletingReplay(replay, output, at=60), output,
                       show_progress=False)
    assert not output.exists()
    assert main(replay_args(replay, output, "--tasks", "mvbench", "--data-root", str(root))) == 0
    assert read_results(output)["tasks"]["mvbench"]["n"] == 200
    assert len(RunStore(output).load_samples("mvbench")) == 200


def test_a_samples_file_deleted_mid_run_leaves_the_run_unfinished(tmp_path):
    root = write_root(tmp_path / "data", mvbench_records(100))
    replay = write_replay(tmp_path / "replay.jsonl", "mvbench", list(range(1, 101)))
    output = tmp_path / "run"

    class DeletingSamples(ReplayBackend):
        def generate(self, requests):
            samples = output / "samples" / "mvbench.jsonl"
            if requests[0].item_id == "50":
                samples.unlink()
            return super().generate(requests)

    settings = EvalSettings(model_spec=f"replay:{replay}", tasks=("mvbench",), data_root=root)
    results = run_evaluation(settings, DeletingSamples(replay), output, show_progress=False)
    entry = results.tasks["mvbench"]
    assert entry.complete is False and entry.n_scored + entry.n_errors <= 51
    resumed = run_evaluation(settings, ReplayBackend(replay), output, show_progress=False)
    assert resumed.tasks["mvbench"].complete is True
    assert len(RunStore(output).load_samples("mvbench")) == 100


# -- 5. frame-cache entries are checked, not trusted ---------------------------------------------
def test_frame_cache_survives_emptied_memos_and_malformed_entries(tmp_path):
    videos = [synthetic_media.write_video(tmp_path / f"v{i}.mp4", seconds=1, seed=i)
              for i in range(3)]
    policy = FramePolicy(num_frames=4)

    def sampler(video: Path, policy: FramePolicy):  # SampledFrames
        return sample_frames(video, policy=policy)

    expected = [sampler(video, policy).frames for video in videos]
    cache = FrameCache(tmp_path / "cache")
    for video in videos:
        cache.get_or_sample(video, policy, sampler)
    for memo in (tmp_path / "cache" / "hashes").iterdir():
        memo.write_bytes(b"")  # what a power loss after an unsynced rename can leave
    for video, frames in zip(videos, expected, strict=True):
        got = FrameCache(tmp_path / "cache").get_or_sample(video, policy, sampler)
        assert np.array_equal(got.frames, frames), f"{video.name} got another video's frames"

    entries = sorted((tmp_path / "cache" / "frames").glob("*.json"))
    entries[0].write_text("{not json")
    entries[1].write_text(json.dumps({"indices": "oops"}))
    npys = sorted((tmp_path / "cache" / "frames").glob("*.npy"))
    npys[2].write_bytes(npys[2].read_bytes()[:100])
    fresh = FrameCache(tmp_path / "cache")
    for video, frames in zip(videos, expected, strict=True):
        assert np.array_equal(fresh.get_or_sample(video, policy, sampler).frames, frames)
    assert fresh.misses == 3
    again = FrameCache(tmp_path / "cache")
    for video in videos:
        again.get_or_sample(video, policy, sampler)
    assert again.hits == 3  # the damaged entries were rewritten


# -- 6. a judge reply without a verdict is a judge failure --------------------------------------
def mmvu_root(tmp_path: Path, count: int) -> tuple[Path, Path]:
    records = [{"problem_id": i, "problem": f"Which quantity stays constant in clip {i}?",
                "data_type": "video", "problem_type": "multiple choice",
                "options": [f"{letter}. quantity {letter}" for letter in "ABCDE"],
                "solution": f"<answer>{'ABCDE'[i % 5]}</answer>",
                "path": f"./Evaluation/MMVU/videos/Mechanics/{i}.mp4"}
               for i in range(1, count + 1)]
    root = tmp_path / "data"
    root.mkdir()
    (root / "eval_mmvu.json").write_text(json.dumps(records))
    replay = write_replay(tmp_path / "replay.jsonl", "mmvu", list(range(1, count + 1)), "B")
    return root, replay


def test_a_judge_reply_without_a_verdict_is_retried_never_cached_and_left_pending(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    count = 6
    root, replay = mmvu_root(tmp_path, count)
    output, cache = tmp_path / "run", tmp_path / "cache"

    def args(server: FakeJudgeServer) -> list[str]:
        return replay_args(replay, output, "--tasks", "mmvu", "--data-root", str(root),
                           "--protocol", "official", "--judge", "openai", "--judge-base-url",
                           server.openai_base_url, "--judge-cache", str(cache),
                           "--judge-max-retries", "2", "--judge-concurrency", "1")

    kinds = list(NO_VERDICT_REPLIES)
    with FakeJudgeServer(api_key=KEY, faults=[kinds[i % 3] for i in range(200)]) as server:
        assert main(args(server)) == 3
        assert server.model_calls() == 3  # one item spent its budget; no item sent after it
    error = capsys.readouterr().err
    assert f"{count} judge-graded items are not scored yet" in error and "no verdict" in error
    results = read_results(output)
    assert results["tasks"]["mmvu"]["n_judge_pending"] == count
    assert results["tasks"]["mmvu"]["score"] is None

    with FakeJudgeServer(api_key=KEY) as server:
        assert main(args(server)) == 0
        assert server.model_calls() == count  # nothing was cached from the replies without one
    samples = RunStore(output).load_samples("mmvu")
    assert all(sample.score is not None for sample in samples.values())


# -- 7. a killed re-merge ------------------------------------------------------------------------
class Crash(BaseException):
    """A crash at a chosen durable write (what SIGKILL there would leave)."""


def test_a_merge_crashed_at_any_durable_write_never_reads_as_finished_with_other_samples(
    tmp_path, monkeypatch
):
    """``p2r-eval merge`` (after a shard was re-run) crashed at each of its durable writes in
    turn: whenever results.json says finished, the samples file is the whole merge."""
    from p2r_eval.eval.shards import merge_shards

    root = write_root(tmp_path / "data", mvbench_records(40))
    replay = write_replay(tmp_path / "replay.jsonl", "mvbench", list(range(1, 41)))
    output = tmp_path / "run"
    for index in range(2):
        assert main(replay_args(replay, output, "--tasks", "mvbench", "--data-root", str(root),
                                "--shard", f"{index}/2")) == 0
    samples_path = output / "samples" / "mvbench.jsonl"
    expected = samples_path.read_bytes()
    assert expected.count(b"\n") == 40

    real_fsync = os.fsync
    crash_point, finished_anyway = 0, False
    while not finished_anyway:
        crash_point += 1
        calls = 0

        def crashing_fsync(fd: int, point: int = crash_point) -> None:
            nonlocal calls
            calls += 1
            if calls == point:
                raise Crash
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", crashing_fsync)
        try:
            merge_shards(output, 2)
            finished_anyway = True
        except Crash:
            pass
        finally:
            monkeypatch.setattr(os, "fsync", real_fsync)
        if read_results(output).get("finished_at"):
            assert samples_path.read_bytes() == expected, (
                f"crash at durable write {crash_point}: results.json says finished, the "
                "samples file is not the merge")
    assert crash_point > 2
    assert samples_path.read_bytes() == expected


def test_a_merge_refuses_shards_made_from_other_data(tmp_path, capsys):
    root = write_root(tmp_path / "data", mvbench_records(10))
    replay = write_replay(tmp_path / "replay.jsonl", "mvbench", list(range(1, 11)))
    output = tmp_path / "run"
    for index in range(2):
        assert main(replay_args(replay, output, "--tasks", "mvbench", "--data-root", str(root),
                                "--shard", f"{index}/2")) == 0
    merged = (output / "results.json").read_text()
    write_root(root, mvbench_records(10, shift=2))  # the answer key changed after the shards
    capsys.readouterr()
    assert main(["merge", str(output)]) == 2
    assert "different items" in capsys.readouterr().err
    assert (output / "results.json").read_text() == merged


# -- 8. --limit ----------------------------------------------------------------------------------
@pytest.mark.parametrize("limit", ["0", "-1"])
def test_a_limit_below_one_is_refused(tmp_path, capsys, limit):
    root = write_root(tmp_path / "data", mvbench_records(5))
    replay = write_replay(tmp_path / "replay.jsonl", "mvbench", list(range(1, 6)))
    output = tmp_path / "run"
    with pytest.raises(SystemExit) as exited:
        main(replay_args(replay, output, "--tasks", "mvbench", "--data-root", str(root),
                         "--limit", limit))
    assert exited.value.code == 2
    assert "--limit" in capsys.readouterr().err
    assert not output.exists()

"""Concurrency: two ``p2r-eval`` processes on one output folder (the second refuses with a
clear message before it loads anything, the first finishes intact); two processes sharing a
frame cache; shards finishing together (the second merge waits for the first instead of
failing).

Proved elsewhere and not repeated: the judge's SQLite reply cache under concurrent processes
and threads
(tests/judge/test_judge.py::test_the_cache_is_safe_for_concurrent_processes_and_threads),
a second annotation run on a locked folder (tests/training/test_annotate.py::
test_a_second_process_on_the_same_folder_is_refused).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest

from p2r_eval.cli.main import main
from p2r_eval.core.items import Item
from p2r_eval.eval.runstore import RunStore
from p2r_eval.media.requests import RequestBuilder, prefetch_requests
from p2r_eval.media.synthetic_media import write_video
from p2r_eval.media.video import FramePolicy, sample_frames

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from judge_server import FakeJudgeServer

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key"
ITEMS = 12


@pytest.fixture
def judged_task(tmp_path: Path) -> dict[str, Path]:
    """MMVU records graded by the judge (--protocol official) and replayed outputs: a run
    whose pace the judge server sets."""
    root = tmp_path / "data"
    root.mkdir()
    records = [{"problem_id": i, "problem": f"Which quantity is constant in clip {i}?",
                "data_type": "video", "problem_type": "multiple choice",
                "options": ["A. size", "B. speed", "C. colour"],
                "solution": f"<answer>{'ABC'[i % 3]}</answer>",
                "path": f"./Evaluation/MMVU/videos/Mechanics/{i}.mp4"}
               for i in range(1, ITEMS + 1)]
    (root / "eval_mmvu.json").write_text(json.dumps(records))
    outputs = [json.dumps({"task": "mmvu", "id": i, "output": f"<answer>{'ABC'[i % 2]}</answer>"})
               for i in range(1, ITEMS + 1)]
    (tmp_path / "replay.jsonl").write_text("\n".join(outputs) + "\n")
    return {"root": root, "replay": tmp_path / "replay.jsonl", "base": tmp_path}


def eval_args(task: dict[str, Path], server: FakeJudgeServer, output: Path) -> list[str]:
    return ["--model", f"replay:{task['replay']}", "--tasks", "mmvu", "--data-root",
            str(task["root"]), "--protocol", "official", "--judge", "openai",
            "--judge-base-url", server.openai_base_url, "--judge-model", "fake-judge-1",
            "--judge-cache", str(output.parent / f"{output.name}-judge"), "--judge-timeout",
            "60", "--quiet", "--output", str(output)]


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "P2R_HUB": "0", "OPENAI_API_KEY": KEY, "PYTHONPATH": str(REPO_ROOT)}


def test_a_second_run_on_the_same_folder_refuses_and_the_first_is_intact(judged_task,
                                                                         monkeypatch):
    monkeypatch.setenv("P2R_HUB", "0")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    reference = judged_task["base"] / "reference"
    with FakeJudgeServer(api_key=KEY) as server:
        assert main(eval_args(judged_task, server, reference)) == 0
    output = judged_task["base"] / "shared"
    # Every judge call takes 0.3 s: the first run holds the folder for about 4 s.
    with FakeJudgeServer(api_key=KEY, faults=["timeout"] * ITEMS, slow_reply_s=0.3) as server:
        command = [sys.executable, "-m", "p2r_eval.cli", *eval_args(judged_task, server, output)]
        first = subprocess.Popen(command, env=subprocess_env(), cwd=REPO_ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples = output / "samples" / "mmvu.jsonl"
        deadline = time.monotonic() + 120
        while not (samples.exists() and samples.stat().st_size):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        second = subprocess.run(command, env=subprocess_env(), cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first run ended before the second one started"
        out, err = first.communicate(timeout=120)
    assert second.returncode == 2
    assert second.stderr.strip() == (f"p2r-eval: another p2r run is writing {output} right "
                                      "now; wait for it to finish or choose another --output")
    assert first.returncode == 0, err
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    assert max(Counter(line["id"] for line in lines).values()) == 1
    assert {line["id"]: line for line in lines} == {
        item_id: sample.as_json()
        for item_id, sample in RunStore(reference).load_samples("mmvu").items()}
    assert json.loads((output / "results.json").read_text())["tasks"]["mmvu"]["score"] == \
        json.loads((reference / "results.json").read_text())["tasks"]["mmvu"]["score"]


# -- the frame cache, shared by two processes at once --------------------------------------------
def build_requests(arguments: tuple[list[Item], str]) -> list[tuple[str, np.ndarray]]:
    """One "run": every item's request through the shared frame cache, in this order."""
    items, cache = arguments
    builder = RequestBuilder("p2r", FramePolicy(num_frames=6), frame_cache=Path(cache))
    return [(item.id, request.frames) for item, request in prefetch_requests(items, builder)]


def test_two_processes_sharing_a_frame_cache_get_exactly_the_decoded_frames(tmp_path):
    videos = [write_video(tmp_path / "videos" / f"v{i}.mp4", seconds=2, fps=10, seed=i)
              for i in range(6)]
    items = [Item("mvbench", str(i), "q", ("A. x",), "A", "multiple choice", path)
             for i, path in enumerate(videos)]
    cache = tmp_path / "frame-cache"
    with get_context("spawn").Pool(2) as pool:
        runs = pool.map(build_requests, [(items, str(cache)), (items[::-1], str(cache))])
    expected = {str(i): sample_frames(path, policy=FramePolicy(num_frames=6)).frames
                for i, path in enumerate(videos)}
    for run in runs:
        assert len(run) == len(videos)
        for item_id, frames in run:
            np.testing.assert_array_equal(frames, expected[item_id])
    entries = sorted(p.name for p in (cache / "frames").iterdir())
    assert len(entries) == 2 * len(videos) and not [n for n in entries if n.startswith(".tmp")]
    again = build_requests((items, str(cache)))  # every entry complete and readable
    for item_id, frames in again:
        np.testing.assert_array_equal(frames, expected[item_id])


# -- shards finishing together ---------------------------------------------------------------------
def test_a_merge_waits_for_a_merge_in_progress_instead_of_failing(judged_task, tmp_path,
                                                                 monkeypatch, capsys):
    """Two shards that finish at the same moment both merge; the second must wait for the
    first (same result), not exit 2 after its work is done."""
    monkeypatch.setenv("P2R_HUB", "0")
    replay = ["--model", f"replay:{judged_task['replay']}", "--tasks", "mmvu", "--data-root",
              str(judged_task["root"]), "--quiet"]
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert main([*replay, "--output", str(single)]) == 0
    assert main([*replay, "--output", str(sharded), "--shard", "0/2"]) == 0
    assert main([*replay, "--output", str(sharded), "--shard", "1/2"]) == 0
    merged_once = (sharded / "samples" / "mmvu.jsonl").read_bytes()
    lock_taken = threading.Event()
    release = threading.Event()

    def merging_elsewhere() -> None:
        with RunStore(sharded).exclusive():
            lock_taken.set()
            release.wait(30)

    holder = threading.Thread(target=merging_elsewhere)
    holder.start()
    lock_taken.wait(30)
    threading.Timer(1.0, release.set).start()
    capsys.readouterr()
    code = main(["merge", str(sharded)])
    holder.join()
    assert code == 0, capsys.readouterr().err
    assert (sharded / "samples" / "mmvu.jsonl").read_bytes() == merged_once
    assert merged_once == (single / "samples" / "mmvu.jsonl").read_bytes()

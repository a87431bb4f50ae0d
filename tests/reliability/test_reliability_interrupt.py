"""Interruption: evaluation runs killed with SIGKILL at seeded random points resume to results
identical to an uninterrupted run; no item is generated twice; a half-written last line is
cut off, never parsed.

Kill points (see docs/reliability.md for the figures):

* 10 with the ``replay:`` backend (generation is instant, so a run of 2,250 items is killed at
  seeded random byte offsets of its samples files, often in the middle of an append);
* 2 with the demo model (a real checkpoint decoding real videos), killed after a random
  number of finished items.

A kill that lands mid-append is also reproduced exactly, by cutting a finished samples file at
random byte offsets and resuming: the torn tail is cut and only the lost items are generated
again, each once.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from killing import run_and_kill

from p2r_eval.cli.main import main
from p2r_eval.core.request import Request
from p2r_eval.eval.loop import EvalSettings, run_evaluation
from p2r_eval.eval.results import RunResults
from p2r_eval.eval.runstore import RunStore
from p2r_eval.models.replay import ReplayBackend

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
MVBENCH_ITEMS, VSIBENCH_ITEMS = 1500, 750
REPLAY_KILLS, DEMO_KILLS = 10, 2
TASKS = ("mvbench", "vsibench")


@pytest.fixture(autouse=True)
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2R_HUB", "0")


def p2r_eval_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "p2r_eval.cli", *args]


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "P2R_HUB": "0", "PYTHONPATH": str(REPO_ROOT)}


def write_data_root(root: Path) -> Path:
    """Video-R1 format MVBench (multiple choice) and VSI-Bench (regression) records, and a
    replay file: right, wrong and malformed answers, outputs holding U+2028 (which JSON writes
    raw), and items without an output (each becomes an error sample)."""
    rng = random.Random(11)
    root.mkdir(parents=True)
    mvbench = [{"problem_id": i, "problem": f"Which way does object {i} move?",
                "data_type": "video", "problem_type": "multiple choice",
                "options": ["A. left", "B. right", "C. up"],
                "solution": f"<answer>{'ABC'[i % 3]}</answer>",
                "path": f"./Evaluation/MVBench/ssv2_video/{i}.mp4"}
               for i in range(1, MVBENCH_ITEMS + 1)]
    vsibench = [{"problem_id": i, "problem": f"How far apart are the chairs of room {i}?",
                 "data_type": "video", "problem_type": "regression",
                 "original_question_type": "object_abs_distance", "options": None,
                 "solution": f"<answer>{i % 7 + 1}.5</answer>",
                 "path": f"./Evaluation/VSIBench/arkitscenes/{i}.mp4"}
                for i in range(1, VSIBENCH_ITEMS + 1)]
    (root / "eval_mvbench.json").write_text(json.dumps(mvbench))
    (root / "eval_vsibench.json").write_text(json.dumps(vsibench))
    lines = []
    for record in mvbench:
        if rng.random() < 0.02:
            continue  # no output: an error sample
        answer = rng.choice(["A", "B", "C", "(B)", "", "</answer>"])
        lines.append({"task": "mvbench", "id": record["problem_id"],
                      "output": f"<observation>frame\u2028{record['problem_id']}</observation>"
                                f"<think>hmm</think><answer>{answer}</answer>"})
    for record in vsibench:
        number = rng.choice(["2.5", "3", "1e3", "x", "4,5"])
        lines.append({"task": "vsibench", "id": record["problem_id"],
                      "output": f"<think>about</think><answer>{number}</answer>"})
    (root / "replay.jsonl").write_text(
        "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n",
        encoding="utf-8")
    return root


def samples_lines(run: Path, task: str) -> list[dict[str, Any]]:
    path = run / "samples" / f"{task}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def comparable(results: dict[str, Any]) -> dict[str, Any]:
    """What two runs of the same items must share: task entries without wall times."""
    tasks = {name: {k: v for k, v in entry.items() if k != "wall_time_s"}
             for name, entry in results["tasks"].items()}
    return {"model": results["model"]["fingerprint"], "settings": results["settings"],
            "tasks": tasks, "finished": bool(results["finished_at"])}


def assert_same_run(run: Path, reference: Path, tasks: Sequence[str]) -> None:
    """Identical results.json task entries, and per item the same output and score; every id
    exactly once in each samples file."""
    results = json.loads((run / "results.json").read_text())
    expected = json.loads((reference / "results.json").read_text())
    assert comparable(results) == comparable(expected)
    for task in tasks:
        lines = samples_lines(run, task)
        repeated = [i for i, n in Counter(line["id"] for line in lines).items() if n > 1]
        assert not repeated, f"{task}: items written twice: {repeated[:5]}"
        keyed = {line["id"]: line for line in lines}
        reference_lines = {line["id"]: line for line in samples_lines(reference, task)}
        assert keyed == reference_lines
    assert (run / "analysis.md").read_text() == (reference / "analysis.md").read_text()


def samples_bytes(run: Path) -> int:
    folder = run / "samples"
    return sum(p.stat().st_size for p in folder.glob("*.jsonl")) if folder.is_dir() else 0


def torn_tails(run: Path) -> int:
    """Samples files whose last line is half written."""
    return sum(1 for p in (run / "samples").glob("*.jsonl")
               if p.stat().st_size and not p.read_bytes().endswith(b"\n"))


# -- replay: 10 kills at random byte offsets ---------------------------------------------------
@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_data_root(tmp_path_factory.mktemp("interrupt") / "data")


def replay_args(data_root: Path, output: Path) -> list[str]:
    return ["--model", f"replay:{data_root / 'replay.jsonl'}", "--tasks", ",".join(TASKS),
            "--data-root", str(data_root), "--quiet", "--output", str(output)]


def test_ten_random_kills_resume_to_the_uninterrupted_results(data_root, tmp_path):
    reference = tmp_path / "reference"
    assert main(replay_args(data_root, reference)) == 0
    total = samples_bytes(reference)
    rng = random.Random(2024)
    targets = sorted(rng.sample(range(1, total), REPLAY_KILLS))
    killed = tmp_path / "killed"
    torn = 0
    for target in targets:
        run_and_kill(p2r_eval_command(*replay_args(data_root, killed)),
                     lambda target=target: samples_bytes(killed) >= target,
                     env=subprocess_env(), cwd=REPO_ROOT, poll_s=0.002)
        torn += torn_tails(killed)
    assert main(replay_args(data_root, killed)) == 0
    assert_same_run(killed, reference, TASKS)
    print(f"{REPLAY_KILLS} kills at byte offsets {targets} of {total}; {torn} left a torn line")


# -- a kill in the middle of an append, reproduced byte by byte --------------------------------
class CountingReplay(ReplayBackend):
    """The replay backend, counting what it is asked to generate."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.asked: Counter[tuple[str, str]] = Counter()

    def generate(self, requests: Sequence[Request]) -> list[str]:
        self.asked.update((r.task, r.item_id) for r in requests)
        return super().generate(requests)


def test_a_samples_file_cut_at_any_byte_resumes_exactly(data_root, tmp_path):
    settings = EvalSettings(model_spec=f"replay:{data_root / 'replay.jsonl'}", tasks=("mvbench",),
                            data_root=data_root, limit=60)
    reference = tmp_path / "reference"
    run_evaluation(settings, CountingReplay(data_root / "replay.jsonl"), reference,
                   show_progress=False)
    whole = (reference / "samples" / "mvbench.jsonl").read_bytes()
    rng = random.Random(7)
    for cut in rng.sample(range(1, len(whole)), 12):
        run = tmp_path / f"cut-{cut}"
        (run / "samples").mkdir(parents=True)
        (run / "samples" / "mvbench.jsonl").write_bytes(whole[:cut])
        results = json.loads((reference / "results.json").read_text())
        (run / "results.json").write_text(json.dumps({**results, "finished_at": None}))
        kept_ids = {json.loads(line)["id"] for line in whole[:cut].split(b"\n")[:-1]}
        backend = CountingReplay(data_root / "replay.jsonl")
        run_evaluation(settings, backend, run, show_progress=False)
        lost = {record["id"] for record in samples_lines(reference, "mvbench")} - kept_ids
        assert backend.asked == Counter({("mvbench", item_id): 1 for item_id in lost})
        assert (run / "samples" / "mvbench.jsonl").read_bytes() == whole


def test_analysis_is_written_before_the_run_is_marked_finished(data_root, tmp_path, monkeypatch):
    """A finished run is never redone, so a crash between the last two writes must not leave
    a finished run without its analysis.md."""
    seen: list[tuple[bool, bool]] = []
    write_results = RunStore.write_results

    def recording(store: RunStore, results: RunResults) -> None:
        seen.append((bool(results.finished_at), (store.root / "analysis.md").is_file()))
        write_results(store, results)

    monkeypatch.setattr(RunStore, "write_results", recording)
    settings = EvalSettings(model_spec="replay", tasks=("mvbench",), data_root=data_root,
                            limit=5)
    run_evaluation(settings, ReplayBackend(data_root / "replay.jsonl"), tmp_path / "run",
                   show_progress=False)
    assert seen[-1] == (True, True)
    assert all(not finished for finished, _ in seen[:-1])


# -- the demo model: 2 kills after a random number of finished items -----------------------------
DEMO_ARGS = ["--model", "demo", "--tasks", "mvbench,videomme", "--frames", "4",
             "--max-new-tokens", "12", "--quiet"]


def finished_items(run: Path) -> int:
    folder = run / "samples"
    return sum(p.read_bytes().count(b"\n") for p in folder.glob("*.jsonl")) if folder.is_dir() \
        else 0


def test_demo_model_killed_twice_resumes_to_the_uninterrupted_results(tmp_path):
    reference = tmp_path / "reference"
    assert main([*DEMO_ARGS, "--output", str(reference)]) == 0
    total = sum(len(samples_lines(reference, task)) for task in ("mvbench", "videomme"))
    points = sorted(random.Random(5).sample(range(1, total), DEMO_KILLS))
    killed = tmp_path / "killed"
    for point in points:
        run_and_kill(p2r_eval_command(*DEMO_ARGS, "--output", str(killed)),
                     lambda point=point: finished_items(killed) >= point,
                     env=subprocess_env(), cwd=REPO_ROOT, poll_s=0.002)
    assert main([*DEMO_ARGS, "--output", str(killed)]) == 0
    assert_same_run(killed, reference, ("mvbench", "videomme"))


# -- Ctrl-C and a full disk: a clear line, their own exit codes, and a resumable folder ---------
def saved_lines(run: Path) -> int:
    """Items saved in the folder (a torn last line is not an item)."""
    return sum(len(RunStore(run).load_samples(task, repair=False)) for task in TASKS)


def test_ctrl_c_says_how_many_items_are_saved_and_the_rerun_resumes(data_root, tmp_path):
    reference = tmp_path / "reference"
    assert main(replay_args(data_root, reference)) == 0
    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(p2r_eval_command(*replay_args(data_root, interrupted)),
                               env=subprocess_env(), cwd=REPO_ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=interruptible)
    while samples_bytes(interrupted) < 50_000:
        assert process.poll() is None, "the run finished before Ctrl-C"
        time.sleep(0.002)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    last_line = stderr.rstrip("\n").split("\n")[-1]
    assert "Traceback" not in stderr, stderr
    assert last_line == (f"p2r-eval: interrupted: {saved_lines(interrupted)} items saved in "
                         f"{interrupted}; run the same command to resume"), stderr
    assert main(replay_args(data_root, interrupted)) == 0
    assert_same_run(interrupted, reference, TASKS)


def interruptible() -> None:
    """A child process set-up that lets Ctrl-C reach it as it would from a terminal, also where
    this test runs with SIGINT ignored (under nohup or as a background job, whose children
    inherit the ignoring, so that Python would install no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def full_disk_at(limit_bytes: int) -> Callable[[], None]:
    """A child process set-up under which a file can grow to ``limit_bytes`` and no further:
    a write past it fails with EFBIG, as one on a full disk fails with ENOSPC."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return limit


def test_a_full_disk_stops_the_run_with_its_own_exit_code_and_the_rerun_resumes(data_root,
                                                                                 tmp_path):
    reference = tmp_path / "reference"
    assert main(replay_args(data_root, reference)) == 0
    stopped = tmp_path / "stopped"
    result = subprocess.run(p2r_eval_command(*replay_args(data_root, stopped)),
                            env=subprocess_env(), cwd=REPO_ROOT, text=True, capture_output=True,
                            preexec_fn=full_disk_at(100_000), timeout=300)
    assert result.returncode == 4, result.stderr
    last_line = result.stderr.rstrip("\n").split("\n")[-1]
    assert "Traceback" not in result.stderr, result.stderr
    assert last_line.startswith("p2r-eval: stopped: ") and "File too large" in last_line
    assert last_line.endswith(f"items saved in {stopped}; run the same command to resume once "
                              "the cause is fixed"), last_line
    assert 0 < saved_lines(stopped) < MVBENCH_ITEMS
    assert main(replay_args(data_root, stopped)) == 0
    assert_same_run(stopped, reference, TASKS)


def test_a_tasks_wall_time_adds_up_the_processes_that_worked_on_it(data_root, tmp_path):
    """Killed once mvbench is finished (its entry written), then resumed: mvbench's wall time
    keeps the first process's time instead of only the resumed pass's."""
    run = tmp_path / "run"

    def mvbench_entry() -> dict[str, Any] | None:
        try:
            results = json.loads((run / "results.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return results["tasks"].get("mvbench")

    run_and_kill(p2r_eval_command(*replay_args(data_root, run)), lambda: bool(mvbench_entry()),
                 env=subprocess_env(), cwd=REPO_ROOT, poll_s=0.002)
    first_process = mvbench_entry()["wall_time_s"]
    assert main(replay_args(data_root, run)) == 0
    assert mvbench_entry()["wall_time_s"] >= first_process > 0


def test_ctrl_c_in_a_terminal_with_decode_workers_prints_one_line(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group, decode workers included."""
    run = tmp_path / "run"
    process = subprocess.Popen(p2r_eval_command(*DEMO_ARGS, "--decode-workers", "1",
                                                "--output", str(run)),
                               env=subprocess_env(), cwd=REPO_ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True, preexec_fn=interruptible)
    while finished_items(run) < 1:
        assert process.poll() is None, "the run finished before Ctrl-C"
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.rstrip("\n").split("\n")[-1].startswith("p2r-eval: interrupted: ")

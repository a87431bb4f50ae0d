"""Interrupted evaluation: what a kill -9 costs, and what durability costs per item.

Usage::

    python perf/bench_interrupt_eval.py                 # 20 kills of a 3,000-item run
    python perf/bench_interrupt_eval.py --kills 50 --items 6000 --workdir DIR

A replayed evaluation (``--model replay:``, instant generation, so every second measured is
p2r's own) of ``--items`` MVBench-format items is run once without interruption, then again
killed with SIGKILL at ``--kills`` seeded random byte offsets of its samples file, resumed
each time, and finished. Reported:

- whether the finished run equals the uninterrupted one (every item's output, score and
  error; results.json task entries without wall times), and how many items were stored twice;
- how many kills left a half-written last line (cut off by the next run);
- the restart cost per kill: (interrupted wall time - uninterrupted) / kills, i.e. process
  start, loading the annotations and the run folder, checking what is done;
- the durability cost per item: ``RunStore.append_record`` (open, append, flush, fsync) of a
  typical 1 KB sample, median over ``--appends`` calls, next to the whole per-item time of
  the uninterrupted run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tabulate import tabulate

from p2r_eval.eval.runstore import RunStore

REPO_ROOT = Path(__file__).resolve().parents[1]


def write_data_root(root: Path, items: int) -> Path:
    """MVBench records in Video-R1's format and replayed outputs (2% missing: error items)."""
    rng = random.Random(11)
    root.mkdir(parents=True, exist_ok=True)
    records = [{"problem_id": i, "problem": f"Which way does object {i} move?",
                "data_type": "video", "problem_type": "multiple choice",
                "options": ["A. left", "B. right", "C. up"],
                "solution": f"<answer>{'ABC'[i % 3]}</answer>",
                "path": f"./Evaluation/MVBench/ssv2_video/{i}.mp4"} for i in range(1, items + 1)]
    (root / "eval_mvbench.json").write_text(json.dumps(records))
    lines = [json.dumps({"task": "mvbench", "id": r["problem_id"],
                         "output": f"<observation>frame {r['problem_id']}</observation><think>"
                                   f"hmm</think><answer>{rng.choice('ABC')}</answer>"})
             for r in records if rng.random() >= 0.02]
    (root / "replay.jsonl").write_text("\n".join(lines) + "\n")
    return root


def command(root: Path, output: Path) -> list[str]:
    return [sys.executable, "-m", "p2r_eval.cli", "--model", f"replay:{root / 'replay.jsonl'}",
            "--tasks", "mvbench", "--data-root", str(root), "--quiet", "--output", str(output)]


def environment() -> dict[str, str]:
    return {**os.environ, "P2R_HUB": "0", "PYTHONPATH": str(REPO_ROOT)}


def samples_file(output: Path) -> Path:
    return output / "samples" / "mvbench.jsonl"


def run_to_end(root: Path, output: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command(root, output), env=environment(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_and_kill(root: Path, output: Path, target: int) -> bool:
    """Kill the run once its samples file reaches ``target`` bytes; True if it left a torn
    last line."""
    process = subprocess.Popen(command(root, output), env=environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = samples_file(output)
    while not (path.exists() and path.stat().st_size >= target):
        if process.poll() is not None:
            raise RuntimeError("the run finished before the kill point")
        time.sleep(0.001)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    data = path.read_bytes()
    return bool(data) and not data.endswith(b"\n")


def item_view(output: Path) -> tuple[dict, int]:
    """Per item (output, score, error), and how many items appear more than once."""
    lines = [json.loads(line) for line in samples_file(output).read_text().split("\n") if line]
    counts = Counter(line["id"] for line in lines)
    view = {line["id"]: (line.get("output"), line.get("score"), line.get("error"))
            for line in lines}
    return view, sum(1 for n in counts.values() if n > 1)


def task_entries(output: Path) -> dict:
    results = json.loads((output / "results.json").read_text())
    return {name: {k: v for k, v in entry.items() if k != "wall_time_s"}
            for name, entry in results["tasks"].items()}


def append_cost_s(folder: Path, appends: int) -> float:
    """Median seconds of one durable append of a typical (1 KB) sample."""
    store = RunStore(folder)
    record = {"id": "0", "answer_type": "multiple choice", "prompt_hash": "0" * 16,
              "output": "<observation>" + "x" * 700 + "</observation><answer>A</answer>",
              "segments": {"observation": "x" * 100, "think": None, "answer": "A",
                           "deviations": []}, "extracted": "A", "score": 1.0,
              "rule": "video-r1:multiple choice", "note": "", "error": None}
    timings = []
    for index in range(appends):
        started = time.perf_counter()
        store.append_record("bench", {**record, "id": str(index)})
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="p2r-bench-interrupt-"))
    root = write_data_root(workdir / "data", args.items)
    reference, killed = workdir / "reference", workdir / "killed"
    uninterrupted_s = run_to_end(root, reference)
    total = samples_file(reference).stat().st_size
    targets = sorted(random.Random(args.seed).sample(range(1, total), args.kills))
    started = time.perf_counter()
    torn = sum(run_and_kill(root, killed, target) for target in targets)
    run_to_end(root, killed)
    interrupted_s = time.perf_counter() - started
    view, repeated = item_view(killed)
    reference_view, _ = item_view(reference)
    identical = view == reference_view and task_entries(killed) == task_entries(reference)
    append_s = append_cost_s(workdir / "appends", args.appends)
    rows = [
        ["items", args.items],
        ["kills (seeded random byte offsets)", args.kills],
        ["finished run equals the uninterrupted one", "yes" if identical else "NO"],
        ["items stored more than once", repeated],
        ["kills that left a half-written last line (cut on resume)", torn],
        ["uninterrupted run, wall s", f"{uninterrupted_s:.2f}"],
        ["interrupted run (all restarts), wall s", f"{interrupted_s:.2f}"],
        ["restart cost per kill, s", f"{(interrupted_s - uninterrupted_s) / args.kills:.2f}"],
        ["durable append per item (open, write, fsync), ms", f"{1e3 * append_s:.3f}"],
        ["whole uninterrupted run per item, ms", f"{1e3 * uninterrupted_s / args.items:.3f}"],
    ]
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; workdir {workdir}")
    print(tabulate(rows, tablefmt="github"))
    return 0 if identical and not repeated else 1


if __name__ == "__main__":
    sys.exit(main())

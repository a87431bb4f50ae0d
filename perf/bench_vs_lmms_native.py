"""End to end: p2r-eval against lmms-eval 0.7.3 running its own Qwen2.5-VL model class.

Usage::

    bash scripts/setup_lmms_env.sh                 # once: lmms-eval in .venv-lmms
    python perf/bench_vs_lmms_native.py            # 3 alternating repeats, ~20 min on 2 cores
    python perf/bench_vs_lmms_native.py --quick    # 1 repeat, 16 instead of 32 items
    python perf/bench_vs_lmms_native.py --p2r-args="--input-policy videorft"
    python perf/bench_vs_lmms_native.py --workloads 2min-x24-3per,2min-x24-3spread

The peer runs as its users run it: ``lmms-eval eval --model qwen2_5_vl`` (lmms-eval's own
model class for Qwen2.5-VL: its qwen-vl-utils video reading, its processor call, its
``generate``) on a plain JSON task written for this benchmark (a YAML and a two-function
``utils.py``: the video path and the question text of each record; no p2r code on that side).
p2r-eval runs its own default pipeline. Both get, per item:

- the same video: synthetic 854x480 30 fps H.264 clips (x264 ultrafast, a keyframe every 250
  frames), 2 minutes or 15 s long (made on first use in ``--workdir``);
- the same question text: the one p2r-eval builds for the item (p2r prompt style), written
  into the JSON records, so lmms-eval's chat template renders the same user turn;
- the same checkpoint (the demo model), 32 frames, at most 200,704 pixels per frame (lmms-eval:
  ``max_num_frames=32,max_pixels=200704``; p2r-eval: ``--frames 32 --max-pixels 200704``),
  greedy decoding of 64 new tokens (``--max-new-tokens``), batch size 1.

p2r-eval also gets ``--decode-workers 1``: one worker process decodes the next items while the
model generates (its best setting on a 2-core machine; ``--p2r-args`` replaces the frame and
worker options, e.g. ``--p2r-args="--frames 32 --max-pixels 200704"`` for inline decoding).

Differences that are each harness's own and kept: lmms-eval's model class loads the weights
in bfloat16 (hard-coded) where p2r-eval uses float32 on a CPU (bfloat16 on a GPU), and the two
sample frames by their own rules (the question is what a user of each pays for the same
request, not whether two pipelines agree bit for bit; ``--p2r-args="--input-policy videorft
--decode-workers 1"``, 32 frames resized to 200,704 pixels as qwen-vl-utils does, gives
p2r-eval the inputs lmms-eval gets here). How many outputs agree is printed as information.

Workloads (each one p2r-eval run and one lmms-eval run per repeat, the order alternating
between repeats; fresh output folders, no caches): 8 items on the 2 minute clip, 32 items on it
(16 with ``--quick``), and 8 items on the 15 s clip, each item with its own video file (links
to the clip), so that no item can take another's frames; then, as information outside the
goals, 24 items asking 3 questions of each of 8 video files, in a row as Video-MME does and
one per video in turn as VideoMMMU and VSI-Bench do (p2r-eval decodes each video once in
both). ``--workloads`` runs some of them only (e.g. ``--workloads 2min-x24-3spread``). Every
run must produce one output per item (lmms-eval can exit 0 after a failed evaluation: its
sample files are what count).

From the medians of the two 2 minute workloads, a two-point fit separates what a run pays once
(start-up: imports, model and task loading, and the files written at the end) from what it
pays per item: ``per item = (T32 - T8) / 24``, ``start-up = T8 - 8 * per item``; the 15 s
workload's per-item cost is ``(T - start-up) / 8`` with the same start-up. p2r-eval's decode
workers decode the first items while its model loads, so its start-up figure is what is left
of the start once that overlap is counted, and its per-item figure the steady state after the
overlap is used up. Wall time (the goals' measure) and CPU time (user + system of the run and
its children, steadier on a shared machine) are both printed, with the load average.

Goals: p2r-eval's wall time at most 0.33x lmms-eval's on 8 two-minute items, and p2r-eval at
least 4x faster per item on two-minute clips.

With the goals' workloads, the run ends with ``perf/per_item_floor.py`` on the 2 minute clip:
the CPU work no pipeline with p2r-eval's exact inputs avoids per item (decoding each wanted
frame from its keyframe, and transformers' ``generate``), spread perfectly over the cores, and
lmms-eval's time per item divided by it: the most any such pipeline could gain per item on the
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_sampler import Clip, ensure_clip
from tabulate import tabulate

from p2r_eval.benchmarks.registry import load_task
from p2r_eval.core.prompts import build_prompt
from p2r_eval.models.demo import ensure_demo_model

REPO = Path(__file__).resolve().parents[1]
HARNESSES = ("p2r-eval", "lmms-eval")
WALL_GOAL = 0.33
PER_ITEM_GOAL = 4.0
FRAMES = 32
MAX_PIXELS = 200_704
CLIPS = {"2min": Clip("2min", 120, 854, 480), "15s": Clip("15s", 15, 854, 480)}
QUESTION = "What moves across the frame?"
OPTIONS = ["A. A square", "B. A circle", "C. Nothing", "D. The camera"]
TASK_UTILS = '''\
"""The benchmark's JSON task: each record names its video and its question text."""


def doc_to_visual(doc):
    return [doc["video"]]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["prompt"]
'''


@dataclass(frozen=True)
class Workload:
    name: str
    clip: str
    items: int
    questions_per_video: int = 1
    in_a_row: bool = True


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float


@dataclass(frozen=True)
class Harnesses:
    """How to run each side."""

    p2r_python: Path
    lmms_venv: Path
    demo_model: Path
    max_new_tokens: int
    p2r_args: tuple[str, ...]


def write_p2r_root(root: Path, clip: Path, items: int, questions_per_video: int = 1,
                   in_a_row: bool = True) -> Path:
    """A Video-R1-format data root (``eval_mvbench.json``) with ``items`` questions, each
    video file (a link to ``clip``, or a copy) asked ``questions_per_video`` questions, in a
    row (Video-MME's layout) or, with ``in_a_row`` False, one per video in turn (VideoMMMU's
    and VSI-Bench's): with 1, every item has its own file, so p2r-eval cannot decode a video
    once for several items and both sides decode every item."""
    root.mkdir(parents=True, exist_ok=True)
    videos = []
    for number in range(-(-items // questions_per_video)):
        video = root / f"clip_{number:03d}.mp4"
        try:  # a hard link: p2r refuses symlinks that lead out of the data root
            os.link(clip, video)
        except OSError:
            shutil.copyfile(clip, video)
        videos.append(video)

    def video_of(position: int) -> int:
        return position // questions_per_video if in_a_row else position % len(videos)

    records = [{"problem_id": number, "problem": QUESTION, "data_type": "video",
                "options": OPTIONS, "problem_type": "multiple choice",
                "solution": "<answer>A</answer>",
                "path": f"./{videos[video_of(number - 1)].name}"}
               for number in range(1, items + 1)]
    (root / "eval_mvbench.json").write_text(json.dumps(records))
    return root


def write_lmms_task(task_dir: Path, name: str, p2r_root: Path, max_new_tokens: int
                    ) -> list[str]:
    """lmms-eval's JSON task ``name`` on the same records and video, with the question text
    p2r-eval sends for each (read back through p2r's own loader); returns the item ids in the
    order of the task's records."""
    task_dir.mkdir(parents=True, exist_ok=True)
    records = [{"id": item.id, "video": str(item.media), "prompt": build_prompt(item, "p2r"),
                "answer": item.answer}
               for item in load_task("mvbench", p2r_root).items]
    data = task_dir / f"{name}.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in records))
    (task_dir / "utils.py").write_text(TASK_UTILS)
    (task_dir / f"{name}.yaml").write_text(f"""\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files: {json.dumps(str(data))}
test_split: train
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: answer
generation_kwargs:
  max_new_tokens: {max_new_tokens}
  temperature: 0
  do_sample: false
  num_beams: 1
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
""")
    return [record["id"] for record in records]


def p2r_command(sides: Harnesses, root: Path, output: Path) -> list[str]:
    return [str(sides.p2r_python), "-m", "p2r_eval.cli", "--model", str(sides.demo_model),
            "--tasks", "mvbench", "--data-root", str(root), "--max-new-tokens",
            str(sides.max_new_tokens), "--quiet", "--output", str(output), *sides.p2r_args]


def lmms_command(sides: Harnesses, task_dir: Path, task: str, output: Path) -> list[str]:
    model_args = (f"pretrained={sides.demo_model},device=cpu,device_map=cpu,"
                  f"max_num_frames={FRAMES},max_pixels={MAX_PIXELS}")
    return [str(sides.lmms_venv / "bin" / "lmms-eval"), "eval", "--model", "qwen2_5_vl",
            "--model_args", model_args, "--tasks", task, "--include_path", str(task_dir),
            "--batch_size", "1", "--log_samples", "--output_path", str(output)]


def run(command: list[str], log: Path) -> Timing:
    """Run ``command`` to its end (success is judged from its output files)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "P2R_HUB": "0"}
    started = time.perf_counter()
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return Timing(time.perf_counter() - started, usage.ru_utime + usage.ru_stime)


def fail(message: str, log: Path) -> None:
    sys.exit(f"{message}; the end of its log ({log}):\n{log.read_text()[-3000:]}")


def p2r_outputs(output: Path, log: Path) -> dict[str, str]:
    """``{item id: output}`` of a finished p2r-eval run (exits unless every item has one)."""
    samples = output / "samples" / "mvbench.jsonl"
    if not samples.is_file():
        fail("p2r-eval wrote no samples", log)
    records = [json.loads(line) for line in samples.read_text().splitlines()]
    failed = [record["id"] for record in records if record.get("error")]
    if failed:
        fail(f"p2r-eval failed items {failed}", log)
    return {record["id"]: record["output"] for record in records}


def lmms_outputs(output: Path, log: Path, ids: list[str]) -> dict[str, str]:
    """The same from lmms-eval's logged samples (``doc_id`` is the record's position in the
    task's data file, whose records are the items ``ids`` in order)."""
    outputs = {}
    for path in output.glob("**/*_samples_*.jsonl"):
        for sample in map(json.loads, path.read_text().splitlines()):
            response = sample.get("resps", sample.get("filtered_resps"))
            while isinstance(response, list):
                response = response[0] if response else None
            if not isinstance(response, str):
                fail(f"lmms-eval logged no output for record {sample['doc_id']}", log)
            outputs[ids[sample["doc_id"]]] = response
    return outputs


def measure(sides: Harnesses, work: Workload, clip: Path, scratch: Path, repeats: int
            ) -> tuple[dict[str, Timing], int]:
    """Median timings of each side over ``repeats`` alternating pairs (every run checked to
    give one output per item) and how many outputs agreed between the sides in the last."""
    root = write_p2r_root(scratch / f"{work.name}-data", clip, work.items,
                          work.questions_per_video, work.in_a_row)
    task_dir = scratch / f"{work.name}-lmms-task"
    task = f"p2rbench_{work.name.replace('-', '_')}"
    ids = write_lmms_task(task_dir, task, root, sides.max_new_tokens)
    timings: dict[str, list[Timing]] = {harness: [] for harness in HARNESSES}
    agreeing = 0
    for repeat in range(repeats):
        outputs = {}
        for harness in HARNESSES if repeat % 2 == 0 else tuple(reversed(HARNESSES)):
            output = scratch / f"{work.name}-{repeat}-{harness}"
            log = output.with_suffix(".log")
            if harness == "p2r-eval":
                timings[harness].append(run(p2r_command(sides, root, output), log))
                outputs[harness] = p2r_outputs(output, log)
            else:
                timings[harness].append(run(lmms_command(sides, task_dir, task, output), log))
                outputs[harness] = lmms_outputs(output, log, ids)
            if len(outputs[harness]) != work.items:
                fail(f"{harness} gave {len(outputs[harness])} outputs for {work.items} items",
                     log)
            print(f"  {harness}: {timings[harness][-1].wall_s:.1f} s", flush=True)
        ours, theirs = outputs["p2r-eval"], outputs["lmms-eval"]
        agreeing = sum(ours[key].strip() == theirs.get(key, "").strip() for key in ours)
    medians = {harness: Timing(statistics.median(t.wall_s for t in runs),
                               statistics.median(t.cpu_s for t in runs))
               for harness, runs in timings.items()}
    return medians, agreeing


@dataclass(frozen=True)
class Fit:
    """A harness's start-up and per-item cost from two workloads on the same clip."""

    start_up_s: float
    per_item_s: float


def two_point_fit(small: float, small_items: int, large: float, large_items: int) -> Fit:
    per_item = (large - small) / (large_items - small_items)
    return Fit(small - small_items * per_item, per_item)


def report(args: argparse.Namespace, sides: Harnesses, works: list[Workload],
           results: dict[str, tuple[dict[str, Timing], int]], floor: dict[str, Any] | None
           ) -> None:
    print(f"\ndemo model ({sides.demo_model.name}), {FRAMES} frames, max {MAX_PIXELS:,} pixels, "
          f"greedy, {sides.max_new_tokens} new tokens, batch 1; p2r-eval args: "
          f"{' '.join(sides.p2r_args)}; {args.repeats} repeat(s), medians; {os.cpu_count()} "
          f"CPUs, load average now {os.getloadavg()[0]:.1f}\n")
    rows = []
    for work in works:
        timings, agreeing = results[work.name]
        ours, theirs = timings["p2r-eval"], timings["lmms-eval"]
        rows.append([work.name, work.items, f"{ours.wall_s:.1f}", f"{theirs.wall_s:.1f}",
                     f"{ours.wall_s / theirs.wall_s:.3f}", f"{ours.cpu_s:.1f}",
                     f"{theirs.cpu_s:.1f}", f"{ours.cpu_s / theirs.cpu_s:.3f}",
                     f"{agreeing}/{work.items}"])
    print(tabulate(rows, headers=["workload", "items", "p2r-eval wall s", "lmms-eval wall s",
                                  "wall ratio", "p2r-eval CPU s", "lmms-eval CPU s",
                                  "CPU ratio", "same outputs"]))
    if any(work.name not in results for work in fit_workloads(args.quick)):
        print("\n(the two-point fit and the goals need 2min-x8, the 32 or 16 item workload "
              "and 15s-x8)")
        return
    small, large, short = fit_workloads(args.quick)
    fits: dict[str, dict[str, Fit]] = {}
    for measure_name in ("wall_s", "cpu_s"):
        fits[measure_name] = {
            harness: two_point_fit(getattr(results[small.name][0][harness], measure_name),
                                   small.items,
                                   getattr(results[large.name][0][harness], measure_name),
                                   large.items)
            for harness in HARNESSES}
    rows = []
    for measure_name, label in (("wall_s", "wall"), ("cpu_s", "CPU")):
        fit = fits[measure_name]
        short_items = {
            harness: (getattr(results[short.name][0][harness], measure_name)
                      - fit[harness].start_up_s) / short.items
            for harness in HARNESSES}
        our_fit, their_fit = fit["p2r-eval"], fit["lmms-eval"]
        rows.append([label, f"{our_fit.start_up_s:.1f} / {their_fit.start_up_s:.1f}",
                     f"{our_fit.per_item_s:.2f} / {their_fit.per_item_s:.2f}",
                     f"{their_fit.per_item_s / our_fit.per_item_s:.2f}x",
                     f"{short_items['p2r-eval']:.2f} / {short_items['lmms-eval']:.2f}",
                     f"{short_items['lmms-eval'] / short_items['p2r-eval']:.2f}x"])
    print(f"\ntwo-point fit ({small.name} and {large.name}): p2r-eval / lmms-eval, seconds\n")
    print(tabulate(rows, headers=["measure", "start-up", "per 2 min item", "per-item speed-up",
                                  "per 15 s item", "per-item speed-up (15 s)"]))
    wall_ratio = (results[small.name][0]["p2r-eval"].wall_s
                  / results[small.name][0]["lmms-eval"].wall_s)
    wall_fit = fits["wall_s"]
    speed_up = wall_fit["lmms-eval"].per_item_s / wall_fit["p2r-eval"].per_item_s
    print("\ngoals (wall time)")
    print(f"  [{'met' if wall_ratio <= WALL_GOAL else 'NOT MET'}] {small.name}: p2r-eval / "
          f"lmms-eval <= {WALL_GOAL}x ({wall_ratio:.3f}x)")
    print(f"  [{'met' if speed_up >= PER_ITEM_GOAL else 'NOT MET'}] per 2 min item: p2r-eval "
          f">= {PER_ITEM_GOAL:g}x faster ({speed_up:.2f}x)")
    if floor is not None:
        their_item = wall_fit["lmms-eval"].per_item_s
        print(f"\nfloor per 2 min item (perf/per_item_floor.py: the work no pipeline with these "
              f"inputs avoids)\n  decoding {floor['frames_decoded']} frames "
              f"{floor['decode_cpu_s']:.3f} CPU s + generating {floor['new_tokens']} tokens "
              f"{floor['generate_cpu_s']:.3f} CPU s, over {floor['cores']} cores: "
              f"{floor['wall_s']:.3f} s per item at best\n  lmms-eval {their_item:.2f} s per "
              f"item: at most {their_item / floor['wall_s']:.2f}x faster per item on this "
              f"machine; p2r-eval {wall_fit['p2r-eval'].per_item_s:.2f} s, "
              f"{floor['wall_s'] / wall_fit['p2r-eval'].per_item_s:.0%} of the way there")


def measure_floor(sides: Harnesses, workdir: Path, scratch: Path) -> dict[str, Any]:
    """``perf/per_item_floor.py``'s figures for the 2 minute clip, with this run's model and
    options (in a process of its own, as the harnesses run)."""
    figures = scratch / "floor.json"
    log = scratch / "floor.log"
    command = [str(sides.p2r_python), str(REPO / "perf" / "per_item_floor.py"), "--clip", "2min",
               "--workdir", str(workdir), "--model", str(sides.demo_model), "--frames",
               str(FRAMES), "--max-pixels", str(MAX_PIXELS), "--max-new-tokens",
               str(sides.max_new_tokens), "--json", str(figures)]
    run(command, log)
    if not figures.is_file():
        fail("perf/per_item_floor.py wrote no figures", log)
    return dict(json.loads(figures.read_text()))


def fit_workloads(quick: bool) -> list[Workload]:
    """The goals' workloads: 8 and 32 (16 with ``--quick``) two-minute items, 8 fifteen-second
    ones; each item its own video file."""
    large = 16 if quick else 32
    return [Workload("2min-x8", "2min", 8), Workload(f"2min-x{large}", "2min", large),
            Workload("15s-x8", "15s", 8)]


def layout_workloads() -> list[Workload]:
    """Information outside the goals: 3 questions on each of 8 video files, in a row (Video-MME's
    layout) and one per video in turn (VideoMMMU's and VSI-Bench's)."""
    return [Workload("2min-x24-3per", "2min", 24, questions_per_video=3),
            Workload("2min-x24-3spread", "2min", 24, questions_per_video=3, in_a_row=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmms-venv", type=Path, default=REPO / ".venv-lmms")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "p2r-bench-sampler",
                        help="where the clips are made once (shared with bench_sampler.py)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 repeat, 16 items not 32")
    parser.add_argument("--p2r-args", default=f"--frames {FRAMES} --max-pixels {MAX_PIXELS} "
                                              "--decode-workers 1",
                        help="p2r-eval's frame and worker options (default: %(default)s)")
    parser.add_argument("--workloads", type=lambda text: text.split(","),
                        help="comma-separated workload names to run (default: all; the fit "
                             "and the goals need the first three)")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    lmms = args.lmms_venv / "bin" / "lmms-eval"
    if not lmms.is_file():
        sys.exit(f"no lmms-eval in {args.lmms_venv}: run bash scripts/setup_lmms_env.sh")
    args.workdir.mkdir(parents=True, exist_ok=True)
    clips = {name: ensure_clip(args.workdir, clip) for name, clip in CLIPS.items()}
    sides = Harnesses(Path(sys.executable), args.lmms_venv, ensure_demo_model(),
                      args.max_new_tokens, tuple(shlex.split(args.p2r_args)))
    works = fit_workloads(args.quick) + layout_workloads()
    if args.workloads:
        unknown = set(args.workloads) - {work.name for work in works}
        if unknown:
            sys.exit(f"unknown workloads {sorted(unknown)}; choose from "
                     f"{', '.join(work.name for work in works)}")
        works = [work for work in works if work.name in args.workloads]
    results = {}
    with tempfile.TemporaryDirectory(prefix="p2r-bench-native-") as scratch_name:
        scratch = Path(scratch_name)
        print("warming up (one item each: model, code and clips in the page cache) ...",
              flush=True)
        measure(sides, Workload("warmup", "15s", 1), clips["15s"], scratch, 1)
        for work in works:
            print(f"{work.name} ...", flush=True)
            results[work.name] = measure(sides, work, clips[work.clip], scratch, args.repeats)
        floor = None
        if all(work.name in results for work in fit_workloads(args.quick)):
            print("the floor per 2 min item ...", flush=True)
            floor = measure_floor(sides, args.workdir, scratch)
    report(args, sides, works, results, floor)


if __name__ == "__main__":
    main()

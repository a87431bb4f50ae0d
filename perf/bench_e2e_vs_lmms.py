"""End to end on CPU: p2r-eval against lmms-eval running the same tasks through the interop.

Usage::

    bash scripts/setup_lmms_env.sh                # once: the lmms-eval environment
    python perf/bench_e2e_vs_lmms.py              # ~4 min on 2 cores
    python perf/bench_e2e_vs_lmms.py --quick      # smaller workloads, ~2 min
    python perf/bench_e2e_vs_lmms.py --repeats 3 --batch-size 8 --max-new-tokens 128

Both harnesses run as subprocesses of one Python environment (``.venv-lmms``: same torch,
transformers and PyAV) on the same items, with the same demo model, the same frames (both
sample with p2r's sampler), the same greedy decoding and the same batch size (the p2r model
batches one task at a time, as p2r-eval does). Each run gets a fresh output folder and no
frame cache. Outputs are compared item by item; a row whose outputs differ proves nothing.

Workloads (each one p2r-eval run and one lmms-eval run, alternating which goes first):

- one item, one new token: what each harness costs before any real work;
- demo suite: p2r's demo suite, all 7 benchmarks (27 items of 2-4 s, 64x48 clips; --quick:
  mvbench and videomme, 2 items each);
- long clips: 8 MVBench-format items (--quick: 4) on the 2 min 640x360 clip of
  ``perf/bench_sampler.py`` (made on first use), from a Video-R1-format data root that both
  harnesses read (lmms-eval through ``P2R_DATA_ROOT``).

Commands: ``python -m p2r_eval.cli --model demo --tasks ... --frames F --max-new-tokens T
--batch-size B --decode-workers W`` against ``lmms-eval eval --model p2r --model_args
pretrained=demo,frames=F,max_new_tokens=T --batch_size B --tasks p2r_... --include_path
lmms_tasks --log_samples``. W is p2r-eval's best here, 0 (decode inline): on a 2-core machine
a decode worker process costs more to start and to share the cores with than it saves.

What differs is only the harness around the same pipeline: lmms-eval's imports, its index of
every task YAML it ships (about 3,000 files parsed at each start), its request building and
logging, against p2r-eval's imports, run store and leaderboard files. Per item both do the
same work (the interop model IS p2r's request path), so the ratio falls only where fixed
costs dominate and tends to 1 as items or ``--max-new-tokens`` grow. Wall time (the goal's
measure) and CPU time (user + system of the run and its children, steadier on a shared
machine) are both reported, medians over ``--repeats``.

Goal: p2r-eval's wall time at most 0.5x lmms-eval's on the same items.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_sampler import CLIPS, ensure_clip
from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]
GOAL = 0.5
ALL_TASKS = ("vsibench", "videommmu", "mmvu", "vcrbench", "mvbench", "tempcompass", "videomme")
HARNESSES = ("p2r-eval", "lmms-eval")


@dataclass(frozen=True)
class Workload:
    name: str
    tasks: tuple[str, ...]
    limit: int | None
    frames: int
    max_new_tokens: int
    batch_size: int
    data_root: Path | None = None


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float


def run(command: list[str], log: Path, data_root: Path | None) -> Timing:
    """Run ``command`` to its end (success is judged from its output files)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "P2R_HUB": "0"}
    env.pop("P2R_DATA_ROOT", None)
    if data_root is not None:
        env["P2R_DATA_ROOT"] = str(data_root)
    started = time.perf_counter()
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return Timing(time.perf_counter() - started, usage.ru_utime + usage.ru_stime)


def p2r_command(venv: Path, work: Workload, output: Path, decode_workers: int) -> list[str]:
    command = [str(venv / "bin" / "python"), "-m", "p2r_eval.cli", "--model", "demo",
               "--tasks", ",".join(work.tasks), "--frames", str(work.frames),
               "--max-new-tokens", str(work.max_new_tokens), "--batch-size",
               str(work.batch_size), "--decode-workers", str(decode_workers), "--quiet",
               "--output", str(output)]
    if work.data_root is not None:
        command += ["--data-root", str(work.data_root)]
    return command + (["--limit", str(work.limit)] if work.limit else [])


def lmms_command(venv: Path, work: Workload, output: Path) -> list[str]:
    model_args = f"pretrained=demo,frames={work.frames},max_new_tokens={work.max_new_tokens}"
    command = [str(venv / "bin" / "lmms-eval"), "eval", "--model", "p2r", "--model_args",
               model_args, "--batch_size", str(work.batch_size), "--tasks",
               ",".join(f"p2r_{task}" for task in work.tasks), "--include_path",
               str(REPO / "lmms_tasks"), "--log_samples", "--output_path", str(output)]
    return command + (["--limit", str(work.limit)] if work.limit else [])


def fail(message: str, output: Path) -> None:
    log = output.with_suffix(".log").read_text()
    sys.exit(f"{message}; the end of its log:\n{log[-3000:]}")


def p2r_outputs(output: Path) -> dict[tuple[str, str], str]:
    """``{(task, id): output}`` of a p2r-eval run (exits if the run did not finish)."""
    results = output / "results.json"
    if not results.is_file() or not json.loads(results.read_text()).get("finished_at"):
        fail("p2r-eval did not finish", output)
    return {(path.stem, record["id"]): record["output"]
            for path in (output / "samples").glob("*.jsonl")
            for record in map(json.loads, path.read_text().splitlines())}


def lmms_outputs(output: Path) -> dict[tuple[str, str], str]:
    """The same from an lmms-eval run's samples. lmms-eval can exit 0 after a failed
    evaluation: its results file is what says it finished."""
    if not list(output.glob("**/*_results.json")):
        fail("lmms-eval wrote no results", output)
    outputs = {}
    for path in output.glob("**/*_samples_p2r_*.jsonl"):
        for sample in map(json.loads, path.read_text().splitlines()):
            score = sample["p2r_score"]
            # ``resps`` (the raw output) is logged only where it differs from the stripped
            # ``filtered_resps``.
            outputs[(score["doc"]["task"], score["id"])] = sample.get(
                "resps", sample["filtered_resps"])
    return outputs


def measure(venv: Path, work: Workload, scratch: Path, repeats: int, decode_workers: int
            ) -> tuple[dict[str, Timing], bool, int]:
    """Median timings of each harness over ``repeats`` alternating pairs, whether every
    pair's outputs matched, and the number of items."""
    timings: dict[str, list[Timing]] = {harness: [] for harness in HARNESSES}
    identical, items = True, 0
    for repeat in range(repeats):
        order = HARNESSES if repeat % 2 == 0 else tuple(reversed(HARNESSES))
        outputs = {}
        for harness in order:
            output = scratch / f"{work.name}-{repeat}-{harness}"
            command = (p2r_command(venv, work, output, decode_workers) if harness == "p2r-eval"
                       else lmms_command(venv, work, output))
            timings[harness].append(run(command, output.with_suffix(".log"), work.data_root))
            outputs[harness] = (p2r_outputs if harness == "p2r-eval" else lmms_outputs)(output)
        identical = identical and outputs["p2r-eval"] == outputs["lmms-eval"]
        items = len(outputs["p2r-eval"])
    medians = {harness: Timing(statistics.median(t.wall_s for t in runs),
                               statistics.median(t.cpu_s for t in runs))
               for harness, runs in timings.items()}
    return medians, identical, items


def write_long_clip_root(root: Path, clip: Path, items: int) -> Path:
    """A Video-R1-format data root with ``items`` MVBench questions on ``clip``."""
    root.mkdir(parents=True, exist_ok=True)
    video = root / "clip.mp4"
    video.unlink(missing_ok=True)
    try:  # a hard link: p2r refuses symlinks that lead out of the data root
        os.link(clip, video)
    except OSError:
        shutil.copyfile(clip, video)
    records = [{"problem_id": number, "problem": "What moves across the frame?",
                "data_type": "video", "options": ["A. A square", "B. Nothing"],
                "problem_type": "multiple choice", "solution": "<answer>A</answer>",
                "path": "./clip.mp4"} for number in range(1, items + 1)]
    (root / "eval_mvbench.json").write_text(json.dumps(records))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmms-venv", type=Path, default=REPO / ".venv-lmms")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "p2r-bench-sampler",
                        help="where the 2 min clip is (shared with bench_sampler.py)")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--decode-workers", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smaller workloads")
    args = parser.parse_args()
    if not (args.lmms_venv / "bin" / "lmms-eval").is_file():
        sys.exit(f"no lmms-eval in {args.lmms_venv}: run bash scripts/setup_lmms_env.sh")
    args.workdir.mkdir(parents=True, exist_ok=True)
    clip = ensure_clip(args.workdir, CLIPS[1])
    settings = (args.frames, args.max_new_tokens, args.batch_size)

    with tempfile.TemporaryDirectory(prefix="p2r-bench-e2e-") as scratch_name:
        scratch = Path(scratch_name)
        long_root = write_long_clip_root(scratch / "long-root", clip, 4 if args.quick else 8)
        fixed = Workload("fixed", ("mvbench",), 1, args.frames, 1, 1)
        workloads = [
            (fixed, 1),
            (Workload("demo-suite", ("mvbench", "videomme") if args.quick else ALL_TASKS,
                      2 if args.quick else None, *settings), args.repeats),
            (Workload("long-clips", ("mvbench",), None, *settings, data_root=long_root),
             args.repeats),
        ]
        print("warming up (demo model and data, both harnesses' files in the page cache)...",
              flush=True)
        measure(args.lmms_venv, Workload("warmup", ("mvbench",), 1, 4, 1, 1), scratch, 1, 0)
        rows, ratios = [], {}
        for work, repeats in workloads:
            print(f"{work.name}...", flush=True)
            timings, identical, items = measure(args.lmms_venv, work, scratch, repeats,
                                                args.decode_workers)
            ours, theirs = timings["p2r-eval"], timings["lmms-eval"]
            ratios[work.name] = (ours.wall_s / theirs.wall_s, identical)
            rows.append([work.name, items, f"{ours.wall_s:.1f}", f"{theirs.wall_s:.1f}",
                         f"{ours.wall_s / theirs.wall_s:.2f}", f"{ours.cpu_s:.1f}",
                         f"{theirs.cpu_s:.1f}", f"{ours.cpu_s / theirs.cpu_s:.2f}",
                         "yes" if identical else "NO"])
    print(f"\ndemo model, {args.frames} frames, greedy, {args.max_new_tokens} new tokens "
          f"(1 for 'fixed'), batch {args.batch_size}, p2r-eval --decode-workers "
          f"{args.decode_workers}, {args.repeats} repeat(s); {os.cpu_count()} CPUs, load "
          f"average now {os.getloadavg()[0]:.1f}\n")
    print(tabulate(rows, headers=["workload", "items", "p2r-eval wall s", "lmms-eval wall s",
                                  "wall ratio", "p2r-eval CPU s", "lmms-eval CPU s",
                                  "CPU ratio", "same outputs"]))
    print("\ngoals (p2r-eval wall time / lmms-eval's, same items)")
    for name in ("demo-suite", "long-clips"):
        ratio, identical = ratios[name]
        met = ratio <= GOAL and identical
        print(f"  [{'met' if met else 'NOT MET'}] {name}: <= {GOAL}x ({ratio:.2f}x)")


if __name__ == "__main__":
    main()

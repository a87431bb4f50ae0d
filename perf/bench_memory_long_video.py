"""Peak memory of a p2r-eval run over a 60 min video at 64 frames, beyond the model's own.

Usage::

    python perf/bench_memory_long_video.py            # 60 min clip (made on first use, ~1.5 min)
    python perf/bench_memory_long_video.py --quick    # a 10 min clip instead
    python perf/bench_memory_long_video.py --workdir DIR --frames 64 --max-new-tokens 16

Two ``p2r-eval`` runs of the demo model, each in its own process, differ only in the video:

- long: a one-item data root in Video-R1's format (``eval_mvbench.json``) whose video is a
  60 min 320x240 30 fps clip (x264 ultrafast, keyframe every 250 frames, 108,000 frames):
  a 30 min clip of ``p2r_eval.media.synthetic_media`` (whose frames number themselves in 16 bits,
  so at most 36 min at 30 fps) written twice in a row without re-encoding;
- baseline: the same command on a 10 s clip of the same kind: interpreter, imports, model,
  processor, one generation: everything but what the long video itself costs.

Peak memory is each run's maximum resident set size as the kernel reports it for that child
process (``os.wait4``). Frames are decoded inline (``--decode-workers 0``, the default), so
the run is one process. "Beyond the model" is the long run's peak less the baseline's.

Goal: under 2 GB (2000 MB) beyond the model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
from bench_sampler import Clip, ensure_clip
from tabulate import tabulate

GOAL_MB = 2000.0
HALF = Clip("30min", 1800, 320, 240)  # synthetic frames number themselves in 16 bits: < 36 min
QUICK_LONG = Clip("10min", 600, 320, 240)
TINY = Clip("10s", 10, 320, 240)


def ensure_twice(workdir: Path, clip: Clip) -> Path:
    """A clip twice as long as ``clip``: its packets written twice in a row, the second copy
    shifted in time (remuxed, not encoded again); made once into ``workdir``."""
    target = workdir / f"twice_{clip.file_name()}"
    if target.exists():
        return target
    source = ensure_clip(workdir, clip)
    partial = target.with_suffix(".partial.mp4")
    with av.open(str(partial), "w", format="mp4") as output:
        out_stream, shift = None, 0
        for _ in range(2):
            with av.open(str(source)) as container:
                stream = container.streams.video[0]
                out_stream = out_stream or output.add_stream_from_template(stream)
                end = 0
                for packet in container.demux(stream):
                    if packet.dts is None or packet.pts is None:  # the final empty packet
                        continue
                    end = max(end, packet.pts + (packet.duration or 0))
                    packet.pts += shift
                    packet.dts += shift
                    packet.stream = out_stream
                    output.mux(packet)
                shift += end
    partial.rename(target)
    return target


def write_data_root(root: Path, video: Path) -> Path:
    """A Video-R1-format data root holding one MVBench question about ``video``."""
    root.mkdir(parents=True, exist_ok=True)
    link = root / "video.mp4"
    link.unlink(missing_ok=True)
    try:  # a hard link: p2r refuses a symlink that leads out of the data root
        os.link(video, link)
    except OSError:
        shutil.copyfile(video, link)
    record = {
        "problem_id": 1, "problem": "What moves across the frame?", "data_type": "video",
        "options": ["A. A square", "B. Nothing"], "problem_type": "multiple choice",
        "solution": "<answer>A</answer>", "path": "./video.mp4",
    }
    (root / "eval_mvbench.json").write_text(json.dumps([record]))
    return root


def peak_rss_run(command: list[str], log: Path) -> tuple[float, float]:
    """Run ``command`` to its end; (its peak RSS in MB, wall seconds). Fails loudly."""
    started = time.perf_counter()
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, "P2R_HUB": "0"})
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}); see {log}")
    return usage.ru_maxrss / 1024, wall  # ru_maxrss is in KiB on Linux


RunCommand = Callable[[Path, Path], list[str]]
"""The p2r-eval command of a run over a data root, writing to an output folder."""


def measured_runs(videos: dict[str, Path], workdir: Path, command: RunCommand
                  ) -> dict[str, tuple[float, float]]:
    """Each video's one-item run (name -> peak RSS in MB, wall seconds), after an unmeasured
    run on the first video that builds the demo model and data once; stops the benchmark
    where a run recorded an error."""
    measured = {}
    with tempfile.TemporaryDirectory(prefix="p2r-bench-memory-") as scratch:
        first = next(iter(videos.values()))
        peak_rss_run(command(write_data_root(workdir / "root-warm", first),
                             Path(scratch) / "warm-run"), workdir / "warm.log")
        for name, video in videos.items():
            output, log = Path(scratch) / f"{name}-run", workdir / f"{name}.log"
            root = write_data_root(workdir / f"root-{name}", video)
            measured[name] = peak_rss_run(command(root, output), log)
            results = json.loads((output / "results.json").read_text())
            if results["tasks"]["mvbench"]["n_errors"]:
                sys.exit(f"the {name} run recorded an error; see {log}")
    return measured


def p2r_eval_command(data_root: Path, output: Path, frames: int, max_new_tokens: int
                     ) -> list[str]:
    return [sys.executable, "-m", "p2r_eval.cli", "--model", "demo", "--tasks", "mvbench",
            "--data-root", str(data_root), "--frames", str(frames), "--max-new-tokens",
            str(max_new_tokens), "--quiet", "--output", str(output)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "p2r-bench-memory")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="a 10 min clip instead of 60 min")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    long_video = (ensure_clip(args.workdir, QUICK_LONG) if args.quick
                  else ensure_twice(args.workdir, HALF))
    videos = {"baseline": ensure_clip(args.workdir, TINY), "long": long_video}
    long_minutes = 10 if args.quick else 60

    measured = measured_runs(videos, args.workdir, lambda root, output: p2r_eval_command(
        root, output, args.frames, args.max_new_tokens))
    peaks = {name: peak for name, (peak, _) in measured.items()}
    rows = [[name, video.name, f"{video.stat().st_size / 1e6:.0f}", f"{measured[name][1]:.1f}",
             f"{peaks[name]:.0f}"] for name, video in videos.items()]
    print(f"p2r-eval --model demo --frames {args.frames} --max-new-tokens "
          f"{args.max_new_tokens}, one item, decode inline\n")
    print(tabulate(rows, headers=["run", "video", "video MB", "wall s", "peak RSS MB"]))
    beyond = peaks["long"] - peaks["baseline"]
    frames_mb = args.frames * TINY.height * TINY.width * 3 / 1e6
    print(f"\nbeyond the model (long - baseline): {beyond:.0f} MB (the {args.frames} sampled "
          f"RGB frames alone: {frames_mb:.0f} MB)")
    print("\ngoals")
    print(f"  [{'met' if beyond < GOAL_MB else 'NOT MET'}] {long_minutes} min video at "
          f"{args.frames} frames: < {GOAL_MB:.0f} MB beyond the model ({beyond:.0f} MB)")
    if args.quick:
        print("  (--quick: a 10 min clip; the goal is stated for 60 min)")


if __name__ == "__main__":
    main()

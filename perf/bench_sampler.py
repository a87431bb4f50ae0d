"""Frame sampler benchmark: p2r's ``sample_frames`` side by side with three peers.

Usage::

    python perf/bench_sampler.py                  # full run (first run generates ~2 min of clips)
    python perf/bench_sampler.py --quick          # 15 s and 2 min clips only, 2 repeats
    python perf/bench_sampler.py --workdir DIR --repeats 5

Clips (synthetic, generated once into ``--workdir``, default ``<tmp>/p2r-bench-sampler``):
15 s 854x480, 2 min 640x360 and 20 min 854x480, all 30 fps, x264 ultrafast, keyframe
every 250 frames. Each method takes 32 uniform frames (``uniform_indices``) per clip:

- p2r: ``p2r_eval.media.video.sample_frames`` (keyframe-aware plan; independent runs of the plan
  decoded in parallel threads, as many as there are usable cores, at most 4);
- decord: ``VideoReader(path).get_batch(indices)``, decord's defaults;
- PyAV sequential: decode every frame, convert only the wanted ones to RGB;
- PyAV seek per frame: for each wanted frame seek back to its keyframe and decode up to it.

The three peers are written the way a user would write them: library defaults (PyAV: slice
threads, the same codec setting p2r uses), one open per clip, no wasted RGB conversions.
Every method's frames are compared with the sequential decode; differences are reported, not
hidden. Methods run round-robin, ``--repeats`` times, in this one process; the tables show
median wall and CPU seconds (CPU: all threads of this process, less sensitive to other load
on a shared machine) and p2r's time divided by each peer's. The goals are judged on wall
time. p2r's CPU time stays close to the cheapest peer's (it decodes no more frames); its
wall-time lead comes from the plan and, on a machine with idle cores, from the parallel
runs: on a loaded machine expect smaller margins.

Goals: p2r no slower than the best peer on every clip, and at least 1.5x faster than decord
on the 20 min clip.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from tabulate import tabulate

from p2r_eval.media.synthetic_media import write_video
from p2r_eval.media.video import sample_frames, uniform_indices

NUM_FRAMES = 32


@dataclass(frozen=True)
class Clip:
    name: str
    seconds: int
    width: int
    height: int
    fps: int = 30
    gop: int = 250

    def file_name(self) -> str:
        return f"clip_{self.name}_{self.width}x{self.height}_{self.fps}fps_gop{self.gop}.mp4"


CLIPS = (Clip("15s", 15, 854, 480), Clip("2min", 120, 640, 360), Clip("20min", 1200, 854, 480))


def ensure_clip(workdir: Path, clip: Clip) -> Path:
    """The clip's file in ``workdir``, generated (to a temporary name, then renamed) if missing."""
    path = workdir / clip.file_name()
    if not path.exists():
        print(f"generating {path.name} ...", flush=True)
        started = time.perf_counter()
        partial = path.with_suffix(".partial.mp4")
        write_video(partial, seconds=clip.seconds, fps=clip.fps, width=clip.width,
                    height=clip.height, gop=clip.gop, preset="ultrafast")
        partial.rename(path)
        print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def p2r(path: Path) -> np.ndarray:
    return sample_frames(path, NUM_FRAMES, timeout_s=None).frames


def decord_peer(path: Path) -> np.ndarray:
    import decord

    reader = decord.VideoReader(str(path))
    return reader.get_batch(uniform_indices(len(reader), NUM_FRAMES)).asnumpy()


def sequential_peer(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        wanted = uniform_indices(stream.frames, NUM_FRAMES)
        remaining = sorted(set(wanted))
        by_index: dict[int, np.ndarray] = {}
        for index, frame in enumerate(container.decode(stream)):
            if index == remaining[0]:
                by_index[index] = frame.to_ndarray(format="rgb24")
                remaining.pop(0)
                if not remaining:
                    break
    return np.stack([by_index[i] for i in wanted])


def seek_per_frame_peer(path: Path) -> np.ndarray:
    """Constant frame rate assumed: frame i is at ``start + i / fps``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.average_rate is None or stream.time_base is None:
            raise ValueError(f"{path}: no frame rate or time base to seek by")
        ticks_per_frame = 1 / (stream.average_rate * stream.time_base)
        start = stream.start_time or 0
        frames = []
        for index in uniform_indices(stream.frames, NUM_FRAMES):
            target = start + round(index * ticks_per_frame)
            container.seek(target, stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts is not None and frame.pts >= target:
                    frames.append(frame.to_ndarray(format="rgb24"))
                    break
    return np.stack(frames)


METHODS: dict[str, Callable[[Path], np.ndarray]] = {
    "p2r": p2r,
    "decord": decord_peer,
    "pyav-sequential": sequential_peer,
    "pyav-seek-per-frame": seek_per_frame_peer,
}
PEERS = [name for name in METHODS if name != "p2r"]


def compare(frames: np.ndarray, reference: np.ndarray) -> str:
    if frames.shape != reference.shape:
        return f"DIFFERENT SHAPE {frames.shape} vs {reference.shape}"
    if np.array_equal(frames, reference):
        return "identical"
    diff = np.abs(frames.astype(np.int16) - reference.astype(np.int16))
    differing = int((diff.reshape(len(diff), -1).max(axis=1) > 0).sum())
    return (f"DIFFERS: {differing}/{len(diff)} frames, max |diff| {diff.max()}, "
            f"mean |diff| {diff.mean():.3f}, pixels differing {(diff > 0).mean():.1%}")


@dataclass
class Measurement:
    wall_s: float  # median wall-clock seconds
    cpu_s: float  # median CPU seconds of this process (all its threads)
    verdict: str  # frames compared with the sequential decode


def measure(path: Path, repeats: int) -> dict[str, Measurement]:
    """Each method ``repeats`` times, round-robin, so that load changes hit all alike."""
    walls: dict[str, list[float]] = {name: [] for name in METHODS}
    cpus: dict[str, list[float]] = {name: [] for name in METHODS}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, method in METHODS.items():
            wall, cpu = time.perf_counter(), time.process_time()
            outputs[name] = method(path)
            walls[name].append(time.perf_counter() - wall)
            cpus[name].append(time.process_time() - cpu)
    reference = outputs["pyav-sequential"]
    return {
        name: Measurement(statistics.median(walls[name]), statistics.median(cpus[name]),
                          compare(outputs[name], reference))
        for name in METHODS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "p2r-bench-sampler")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per method and clip (default 5, --quick 2)")
    parser.add_argument("--quick", action="store_true", help="skip the 20 min clip")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 5)
    clips = CLIPS[:2] if args.quick else CLIPS
    args.workdir.mkdir(parents=True, exist_ok=True)

    import decord

    print(f"python {platform.python_version()}, PyAV {av.__version__}, decord "
          f"{decord.__version__}, {os.cpu_count()} CPUs, {repeats} repeats, "
          f"{NUM_FRAMES} uniform frames, load average before: {os.getloadavg()[0]:.1f}\n")
    timing_rows, ratio_rows, goals = [], [], []
    for clip in clips:
        path = ensure_clip(args.workdir, clip)
        results = measure(path, repeats)
        for name, result in results.items():
            timing_rows.append([clip.name, name, f"{result.wall_s:.3f}", f"{result.cpu_s:.3f}",
                                result.verdict])
        ratios = {peer: results["p2r"].wall_s / results[peer].wall_s for peer in PEERS}
        cpu_ratios = {peer: results["p2r"].cpu_s / results[peer].cpu_s for peer in PEERS}
        ratio_rows.append([clip.name] + [f"{ratios[peer]:.2f} ({cpu_ratios[peer]:.2f})"
                                         for peer in PEERS])
        best_peer = min(PEERS, key=lambda peer: results[peer].wall_s)
        goals.append((f"{clip.name}: p2r no slower than the best peer ({best_peer}, "
                      f"ratio {ratios[best_peer]:.2f})", ratios[best_peer] <= 1.0))
        if clip.name == "20min":
            speedup = 1 / ratios["decord"]
            goals.append((f"20min: p2r >= 1.5x faster than decord ({speedup:.2f}x)",
                          speedup >= 1.5))
    print(f"load average after: {os.getloadavg()[0]:.1f}\n")
    print(tabulate(timing_rows, headers=["clip", "method", "wall s", "CPU s",
                                         "frames vs sequential decode"]))
    print("\np2r wall time / peer wall time, (CPU time ratio); below 1: p2r faster")
    print(tabulate(ratio_rows, headers=["clip"] + PEERS))
    print("\ngoals")
    for goal, met in goals:
        print(f"  [{'met' if met else 'NOT MET'}] {goal}")
    if args.quick:
        print("  (--quick: the 20 min clip and its decord goal were not measured)")


if __name__ == "__main__":
    main()

"""Frame cache benchmark: a cache hit against decoding, on the 20 min clip.

Usage::

    python perf/bench_frame_cache.py              # 20 min 854x480 clip (generated on first use)
    python perf/bench_frame_cache.py --quick      # the 2 min 640x360 clip instead, fewer repeats
    python perf/bench_frame_cache.py --workdir DIR --repeats 5

The clip is the one ``perf/bench_sampler.py`` uses (30 fps, x264 ultrafast, keyframe every
250 frames), made by its ``ensure_clip`` into the same default ``--workdir``, so either
benchmark reuses the other's clip. 32 uniform frames, p2r's default frame policy:

- decode: ``p2r_eval.media.video.sample_frames`` (what every uncached request does);
- miss: the first ``FrameCache.get_or_sample`` of the clip: hashing the whole file, decoding,
  storing the frames (paid once per video and frame policy, then shared by every run);
- hit: ``FrameCache.get_or_sample`` again (a fresh ``FrameCache`` object each time, as a new
  run would make): the memoised content hash, then reading the stored ``.npy`` file.

Decode and hit are timed round-robin, ``--repeats`` times each, in this one process (medians).
The hit reads a file the OS has just written, so it is served from the page cache, as it is
for a run that follows another. The frames of a hit are checked identical to a decode.

Goal: a hit at least 50x faster than decoding the 20 min clip.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_sampler import CLIPS, NUM_FRAMES, ensure_clip
from tabulate import tabulate

from p2r_eval.media.frame_cache import FrameCache
from p2r_eval.media.video import FramePolicy, SampledFrames, sample_frames

GOAL = 50.0


def decode(path: Path, policy: FramePolicy) -> SampledFrames:
    return sample_frames(path, policy=policy, timeout_s=None)


def timed(function, *args) -> tuple[float, SampledFrames]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "p2r-bench-sampler")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed decodes and hits (default 5, --quick 3)")
    parser.add_argument("--quick", action="store_true", help="the 2 min clip instead of 20 min")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    clip = CLIPS[1] if args.quick else CLIPS[2]
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = ensure_clip(args.workdir, clip)
    policy = FramePolicy(num_frames=NUM_FRAMES)

    with tempfile.TemporaryDirectory(prefix="p2r-frame-cache-") as cache_dir:
        miss_s, stored = timed(FrameCache(Path(cache_dir)).get_or_sample, path, policy, decode)
        decodes, hits = [], []
        for _ in range(repeats):
            decode_s, decoded = timed(decode, path, policy)
            cache = FrameCache(Path(cache_dir))
            hit_s, cached = timed(cache.get_or_sample, path, policy, decode)
            assert cache.hits == 1, "the second get_or_sample was not a hit"
            decodes.append(decode_s)
            hits.append(hit_s)
        identical = (np.array_equal(cached.frames, decoded.frames)
                     and np.array_equal(stored.frames, decoded.frames)
                     and cached.indices == decoded.indices)
        entry_mb = sum(p.stat().st_size for p in Path(cache_dir).rglob("*") if p.is_file()) / 1e6

    decode_s, hit_s = statistics.median(decodes), statistics.median(hits)
    print(f"clip: {path.name} ({path.stat().st_size / 1e6:.0f} MB), {NUM_FRAMES} frames, "
          f"{repeats} repeats, cache entry {entry_mb:.1f} MB\n")
    print(tabulate([["decode (sample_frames)", f"{decode_s:.3f}"],
                    ["cache miss (hash + decode + store), once", f"{miss_s:.3f}"],
                    ["cache hit", f"{hit_s:.4f}"]],
                   headers=["", "median wall s"]))
    speedup = decode_s / hit_s
    print(f"\nhit frames identical to a decode: {'yes' if identical else 'NO'}")
    print("\ngoals")
    met = speedup >= GOAL and identical
    print(f"  [{'met' if met else 'NOT MET'}] {clip.name}: cache hit >= {GOAL:.0f}x faster than "
          f"decoding ({speedup:.0f}x)")
    if args.quick:
        print("  (--quick: measured on the 2 min clip; the goal is stated for the 20 min clip)")


if __name__ == "__main__":
    main()

"""Input-policy benchmark: p2r's frames under ``--input-policy video-r1`` side by side with the
reference pipeline that policy reproduces.

Usage::

    python perf/bench_input_policy.py            # 15 s, 2 min and 20 min clips
    python perf/bench_input_policy.py --quick    # 15 s and 2 min only

The clips are ``perf/bench_sampler.py``'s (generated once into the same ``--workdir``). Each
method returns the model-ready frames of one clip, resized:

- p2r: ``sample_frames(path, policy=named_frame_policy("video-r1"))``: the keyframe-aware
  sampler, each wanted frame resized right after it is decoded;
- reference: qwen-vl-utils' ``fetch_video`` (PyPI, reading with decord) configured as Video-R1's
  evaluation configures its copy (2 fps, 4-32 frames, 128-256 x 28x28 pixels);
- decord: ``VideoReader.get_batch`` of the same frame indices, not resized (decoding alone).

p2r's frames are compared with the reference's (max absolute difference, 0 expected). Methods
run round-robin ``--repeats`` times in this process; the table shows median wall seconds and
p2r's time divided by each peer's. Goal: p2r at least 2x faster than decord on the 20 min clip
(the sampler's goal, now with the resize included on p2r's side only).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sampler import CLIPS, ensure_clip

from p2r_eval.media.input_policies import named_frame_policy
from p2r_eval.media.video import sample_frames, uniform_indices

VIDEO_R1_SETTINGS = {"VIDEO_MIN_TOKEN_NUM": 128, "VIDEO_MAX_TOKEN_NUM": 256, "FPS": 2.0,
                     "FPS_MIN_FRAMES": 4, "FPS_MAX_FRAMES": 32}


def configured_reference() -> Callable[[Path], np.ndarray]:
    """qwen-vl-utils' fetch_video as Video-R1's evaluation sets it up (frames as THWC uint8)."""
    import torch
    from qwen_vl_utils import vision_process

    vision_process.FORCE_QWENVL_VIDEO_READER = "decord"
    vision_process.get_video_reader_backend.cache_clear()
    for name, value in VIDEO_R1_SETTINGS.items():
        setattr(vision_process, name, value)

    def reference(path: Path) -> np.ndarray:
        video = vision_process.fetch_video({"type": "video", "video": str(path)})
        return video.permute(0, 2, 3, 1).to(dtype=torch.uint8).numpy()

    return reference


def p2r(path: Path) -> np.ndarray:
    return sample_frames(path, policy=named_frame_policy("video-r1"), timeout_s=None).frames


def decord_frames(count: int) -> Callable[[Path], np.ndarray]:
    """decord decoding ``count`` uniform frames (the count p2r's policy chose), not resized."""

    def decode(path: Path) -> np.ndarray:
        import decord

        reader = decord.VideoReader(str(path))
        return reader.get_batch(uniform_indices(len(reader), count)).asnumpy()

    return decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "p2r-bench-sampler")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="skip the 20 min clip")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    reference_method = configured_reference()
    rows = []
    for clip in CLIPS[:2] if args.quick else CLIPS:
        path = ensure_clip(args.workdir, clip)
        count = len(p2r(path))
        methods = {"p2r (video-r1)": p2r, "reference": reference_method,
                   "decord (decode only)": decord_frames(count)}
        times: dict[str, list[float]] = {name: [] for name in methods}
        outputs: dict[str, np.ndarray] = {}
        for _ in range(args.repeats):
            for name, method in methods.items():
                started = time.perf_counter()
                outputs[name] = method(path)
                times[name].append(time.perf_counter() - started)
        wall = {name: statistics.median(values) for name, values in times.items()}
        ours, reference = outputs["p2r (video-r1)"], outputs["reference"]
        same_shape = ours.shape == reference.shape
        difference = (int(np.abs(ours.astype(int) - reference.astype(int)).max())
                      if same_shape else "shapes differ")
        rows.append([clip.name, f"{ours.shape[0]}x{ours.shape[1]}x{ours.shape[2]}",
                     *(f"{wall[name]:.2f}" for name in methods),
                     f"{wall['p2r (video-r1)'] / wall['reference']:.2f}x",
                     f"{wall['decord (decode only)'] / wall['p2r (video-r1)']:.1f}x",
                     difference])
    print(f"{os.cpu_count()} CPUs, median of {args.repeats}, wall seconds")
    print(tabulate(rows, headers=["clip", "frames", "p2r (video-r1)", "reference",
                                  "decord (decode only)", "p2r / reference",
                                  "decord / p2r", "max |p2r - reference|"],
                   tablefmt="github"))


if __name__ == "__main__":
    main()

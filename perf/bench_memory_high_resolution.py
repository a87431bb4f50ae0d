"""Peak memory of a p2r-eval run over a 4K video under the uniform policy, beyond the model's own.

Usage::

    python perf/bench_memory_high_resolution.py                 # 4K (3840x2160), 32 frames
    python perf/bench_memory_high_resolution.py --decode-workers 1
    python perf/bench_memory_high_resolution.py --workdir DIR --frames 32

Two ``p2r-eval`` runs of the demo model under ``--input-policy uniform`` (``--frames 32
--max-pixels 200704``, the end-to-end benchmark's settings), each in its own process, differ
only in the video's resolution:

- high: a one-item data root in Video-R1's format whose video is a 4 s 3840x2160 30 fps clip
  (x264 ultrafast, made on first use in ``--workdir``);
- baseline: the same command on the same clip at 854x480: interpreter, imports, model,
  processor, one generation, and frames of an ordinary size.

Both clips' frames end at the same size (the processor's 588x336 for 854x480 and 476x840 for
4K: at most 200,704 pixels). Where they are resized decides the difference: the demo model's
processor is Qwen2-VL's, so p2r resizes each frame of a video this large right after decoding
(``p2r_eval/models/frame_size.py``) and keeps no 4K frames (32 of them are 796 MB); a
processor p2r cannot size for would get them all at full size. Peak memory is each run's
maximum resident set size as the kernel reports it for that process and its children
(``os.wait4``); "beyond the model" is the high run's peak less the baseline's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench_memory_long_video import measured_runs
from bench_sampler import Clip, ensure_clip
from tabulate import tabulate

HIGH = Clip("4s", 4, 3840, 2160)
BASELINE = Clip("4s", 4, 854, 480)
MAX_PIXELS = 200_704


def p2r_eval_command(data_root: Path, output: Path, frames: int, decode_workers: int
                     ) -> list[str]:
    return [sys.executable, "-m", "p2r_eval.cli", "--model", "demo", "--tasks", "mvbench",
            "--data-root", str(data_root), "--frames", str(frames), "--max-pixels",
            str(MAX_PIXELS), "--max-new-tokens", "4", "--decode-workers", str(decode_workers),
            "--quiet", "--output", str(output)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "p2r-bench-memory")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--decode-workers", type=int, default=0,
                        help="p2r-eval's --decode-workers (default 0: decoding inline)")
    args = parser.parse_args()
    (args.workdir / "high-resolution").mkdir(parents=True, exist_ok=True)
    videos = {"baseline": ensure_clip(args.workdir, BASELINE),
              "high": ensure_clip(args.workdir, HIGH)}

    measured = measured_runs(videos, args.workdir / "high-resolution", lambda root, output: (
        p2r_eval_command(root, output, args.frames, args.decode_workers)))
    peaks = {name: peak for name, (peak, _) in measured.items()}
    rows = [[name, video.name, f"{measured[name][1]:.1f}", f"{peaks[name]:.0f}"]
            for name, video in videos.items()]
    print(f"p2r-eval --model demo --frames {args.frames} --max-pixels {MAX_PIXELS} "
          f"--decode-workers {args.decode_workers}, one item\n")
    print(tabulate(rows, headers=["run", "video", "wall s", "peak RSS MB"]))
    full_size_mb = args.frames * HIGH.height * HIGH.width * 3 / 1e6
    print(f"\nbeyond the model (high - baseline): {peaks['high'] - peaks['baseline']:.0f} MB "
          f"(the {args.frames} frames at 3840x2160: {full_size_mb:.0f} MB)")


if __name__ == "__main__":
    main()

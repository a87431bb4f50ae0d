"""Where a p2r-eval run's CPU goes over time: one run, its processes' CPU seconds sampled.

Usage::

    python perf/cpu_timeline.py                      # 8 items on the 2 minute clip
    python perf/cpu_timeline.py --items 32 --clip 15s
    python perf/cpu_timeline.py --p2r-args="--frames 32 --max-pixels 200704"

Runs p2r-eval exactly as ``perf/bench_vs_lmms_native.py`` does (same data root, clips, demo
model and options; each item its own video file) and, every ``--interval`` seconds, reads the
CPU time of the run and of each process below it from ``/proc``. Each line shows the time,
how many cores the whole tree used since the line before, and each process's CPU seconds so
far (the run first, then its decode workers). A core left idle while the other works, or a
worker that stops before the model is done with the items, shows here; this is how the decode
queue's stall and the worker priority were found (README, "Speed and scale"). Linux only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_sampler import ensure_clip
from bench_vs_lmms_native import CLIPS, FRAMES, MAX_PIXELS, Harnesses, p2r_command, write_p2r_root

from p2r_eval.models.demo import ensure_demo_model

REPO = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux ``/proc``)."""
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pids
    for child in children:
        pids += process_tree(int(child))
    return pids


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid``; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def sample_until_exit(run: subprocess.Popen[bytes], interval_s: float) -> list[str]:
    """One line per interval until ``run`` exits: cores used since the last line and each
    process's CPU seconds (a process keeps its last reading once it is gone)."""
    started = time.perf_counter()
    seen: dict[int, float] = {}
    lines: list[str] = []
    last_time, last_total = 0.0, 0.0
    while run.poll() is None:
        time.sleep(interval_s)
        for pid in process_tree(run.pid):
            reading = cpu_seconds(pid)
            if reading is not None:
                seen[pid] = reading
        now, total = time.perf_counter() - started, sum(seen.values())
        per_process = "  ".join(f"{pid}: {seconds:5.1f}" for pid, seconds in seen.items())
        lines.append(f"{now:6.1f} s  cores {(total - last_total) / (now - last_time):4.2f}  "
                     f"CPU s {per_process}")
        last_time, last_total = now, total
    lines.append(f"wall {time.perf_counter() - started:.1f} s, exit code {run.returncode}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--clip", choices=sorted(CLIPS), default="2min")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between lines")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "p2r-bench-sampler",
                        help="where the clips are made once (shared with the benchmarks)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--p2r-args", default=f"--frames {FRAMES} --max-pixels {MAX_PIXELS} "
                                              "--decode-workers 1",
                        help="p2r-eval's frame and worker options (default: %(default)s)")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    clip = ensure_clip(args.workdir, CLIPS[args.clip])
    sides = Harnesses(Path(sys.executable), REPO / ".venv-lmms", ensure_demo_model(),
                      args.max_new_tokens, tuple(shlex.split(args.p2r_args)))
    with tempfile.TemporaryDirectory(prefix="p2r-cpu-timeline-") as scratch_name:
        scratch = Path(scratch_name)
        root = write_p2r_root(scratch / "data", clip, args.items)
        command = p2r_command(sides, root, scratch / "run")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "P2R_HUB": "0"}
        with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) as run:
            lines = sample_until_exit(run, args.interval)
    print(f"{args.items} items on the {args.clip} clip; p2r-eval args: {args.p2r_args}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

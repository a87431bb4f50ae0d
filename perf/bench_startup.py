"""What a p2r-eval run pays before its first item, phase by phase, and what commands without
a model cost.

Usage::

    python perf/bench_startup.py                 # 3 fresh processes per measurement, medians
    python perf/bench_startup.py --repeats 5 --model /ckpt/Qwen2.5-VL-7B-Instruct

Each repeat is a fresh interpreter (nothing imported, files in the page cache after a warm-up)
that does, in order, what ``p2r-eval --model MODEL --tasks mvbench`` does before and around
its first item, timing each phase (wall and CPU seconds of the process and its threads):

1. p2r-eval's own modules (``p2r_eval.cli.main``, ``p2r_eval.cli.evaluate``);
2. task loading (the demo suite's MVBench annotations, or ``--data-root``'s);
3. torch, 4. torchvision (which the video processor needs; importing it imports
   ``torch._dynamo``), 5. transformers (its model and processor machinery), each imported on
   its own so that the next phase does not hide it;
6. model and processor loading (:class:`p2r_eval.models.hf.HFBackend`: the model's own
   modules, the processor, the weights);
7. the first item's request (decoding its video: 32 frames) and 8. its generation (1 new
   token);
9. the leaderboard files written at the end of a run (the paper's table and its bar plot).

A second table times whole commands that load no model, each in a fresh process: ``--help``,
``models``, ``check-data`` on the demo suite, a replay run of the demo suite's MVBench items and
``leaderboard`` on that run (none of them imports torch: tests/project/test_startup_imports.py).

The interpreter's own start is in neither table (``python -c pass``, printed above them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

PHASES = """\
import json, sys, time
marks = []
def mark(name):
    marks.append((name, time.perf_counter(), time.process_time()))
mark("start")
import p2r_eval.cli.main, p2r_eval.cli.evaluate
mark("p2r-eval's own modules")
from pathlib import Path
from p2r_eval.benchmarks.registry import load_task
root = Path(sys.argv[2]) if sys.argv[2] else None
task = load_task("mvbench", root)
mark("task loading")
import torch
mark("torch")
import torchvision
mark("torchvision (imports torch._dynamo)")
import transformers, transformers.models.auto.modeling_auto, transformers.processing_utils
mark("transformers")
from p2r_eval.models import DecodingSettings, load_backend
backend = load_backend(sys.argv[1], decoding=DecodingSettings(max_new_tokens=1), device="cpu")
mark("model and processor loading")
from p2r_eval.media.requests import RequestBuilder
from p2r_eval.media.video import FramePolicy
request = RequestBuilder("p2r", FramePolicy(num_frames=32))(task.items[0])
mark("first item: decoding its video")
backend.generate([request])
mark("first item: generating 1 token")
print(json.dumps(marks))
"""

LEADERBOARD = """\
import json, sys, time
from pathlib import Path
start = (time.perf_counter(), time.process_time())
from p2r_eval.report.leaderboard import write_leaderboards
write_leaderboards([Path(sys.argv[1])], Path(sys.argv[2]))
print(json.dumps([time.perf_counter() - start[0], time.process_time() - start[1]]))
"""


def python(code: str, *args: str) -> str:
    """stdout of ``code`` run by a fresh interpreter (exits with its stderr if it fails)."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "P2R_HUB": "0"})
    if done.returncode != 0:
        sys.exit(f"a measured process failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def phase_times(model: str, data_root: str) -> dict[str, tuple[float, float]]:
    marks = json.loads(python(PHASES, model, data_root))
    pairs = zip(marks, marks[1:], strict=False)
    return {name: (wall - previous_wall, cpu - previous_cpu)
            for (_, previous_wall, previous_cpu), (name, wall, cpu) in pairs}


def timed_command(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of ``p2r-eval ARGV`` in a fresh interpreter (exits if it fails)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "p2r_eval.cli", *argv],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", "P2R_HUB": "0"})
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"p2r-eval {' '.join(argv)} failed")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def replay_file(folder: Path) -> Path:
    from p2r_eval.benchmarks.registry import load_task

    path = folder / "outputs.jsonl"
    path.write_text("".join(
        json.dumps({"task": "mvbench", "id": item.id, "output": f"<answer>{item.answer}</answer>"})
        + "\n" for item in load_task("mvbench", None).items))
    return path


def median_pair(values: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo", help="'demo' or a checkpoint folder")
    parser.add_argument("--data-root", default="", help="default: the demo suite")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("warming up ...", flush=True)
    phase_times(args.model, args.data_root)
    interpreter = statistics.median(
        timed_python_pass() for _ in range(args.repeats))
    runs = [phase_times(args.model, args.data_root) for _ in range(args.repeats)]
    with tempfile.TemporaryDirectory(prefix="p2r-bench-startup-") as scratch_name:
        scratch = Path(scratch_name)
        replay = replay_file(scratch)
        commands = {
            "p2r-eval --help": lambda n: ["--help"],
            "p2r-eval models": lambda n: ["models"],
            "p2r-eval check-data --tasks all": lambda n: ["check-data", "--tasks", "all"],
            "replay run (demo MVBench)": lambda n: [
                "--model", f"replay:{replay}", "--tasks", "mvbench", "--quiet", "--output",
                str(scratch / f"replay{n}")],
            "p2r-eval leaderboard RUN": lambda n: [
                "leaderboard", str(scratch / "replay0"), "--out", str(scratch / f"lb{n}")],
        }
        command_times = {name: median_pair([timed_command(argv(n))
                                            for n in range(args.repeats)])
                         for name, argv in commands.items()}
        leaderboard = [json.loads(python(LEADERBOARD, str(scratch / "replay0"),
                                         str(scratch / f"boards{n}")))
                       for n in range(args.repeats)]
    rows, total = [], [0.0, 0.0]
    for name in runs[0]:
        wall, cpu = median_pair([run[name] for run in runs])
        total[0] += wall
        total[1] += cpu
        rows.append([name, f"{wall:.2f}", f"{cpu:.2f}"])
    rows.append(["total before and with the first item", f"{total[0]:.2f}", f"{total[1]:.2f}"])
    wall, cpu = median_pair(leaderboard)
    rows.append(["at the end: leaderboard files", f"{wall:.2f}", f"{cpu:.2f}"])
    print(f"\nmodel {args.model}, {args.repeats} fresh processes each, medians; "
          f"{os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.1f}; "
          f"interpreter start (python -c pass): {interpreter:.2f} s\n")
    print(tabulate(rows, headers=["phase of a run", "wall s", "CPU s"]))
    print()
    print(tabulate([[name, f"{wall:.2f}", f"{cpu:.2f}"]
                    for name, (wall, cpu) in command_times.items()],
                   headers=["command without a model (fresh process)", "wall s", "CPU s"]))


def timed_python_pass() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()

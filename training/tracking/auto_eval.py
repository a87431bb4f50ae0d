"""Every saved checkpoint scored automatically: ``p2r-train ... --eval-tasks ...``.

A ``CheckpointEvaluator`` callback (training/tracking/auto_eval_callback.py) runs
``p2r-eval --model RUN_DIR`` (which evaluates the starting model as step 0 and each finished
``checkpoint-<step>`` once, into ``RUN_DIR/eval/``, and regenerates the leaderboard and the
scores-by-step plot; see :mod:`p2r_eval.eval.checkpoints`) in a separate
process, so training never waits
for evaluation and the evaluator never shares the trainer's Python process:

- ``--eval-when during`` (default): launched after each save when no evaluation is already
  running (a running one re-lists the folder and picks up new checkpoints itself). Put it on
  another GPU with ``--eval-device cuda:1``; on one GPU, the model is evaluated next to the
  trainer, so leave memory for it or use ``end``.
- ``--eval-when end``: all checkpoints are evaluated after training, on the freed GPU.
- On another machine, watch the folder instead: ``p2r-eval --model RUN_DIR --watch 300``.

At the end of training the callback waits for the running evaluation, and once the final
model is saved at the run folder's root (the run's last step) a last pass runs, so the run
folder holds results for every model of the run when ``p2r-train`` returns. The
evaluation's output goes to ``RUN_DIR/eval/eval.log``.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from p2r_train.tracking.auto_eval_callback import CheckpointEvaluator


@dataclass(frozen=True)
class AutoEvalSettings:
    """What to evaluate each checkpoint on, and where the evaluation runs."""

    tasks: str
    limit: int | None = None
    every: int = 0
    when: str = "during"
    device: str | None = None
    data_root: Path | None = None
    prompt: str = "p2r"
    frames: int = 32
    max_new_tokens: int = 1024

    def command(self, run_dir: Path) -> list[str]:
        """The p2r-eval command line evaluating ``run_dir``'s checkpoints."""
        command = [sys.executable, "-m", "p2r_eval.cli", "--model", str(run_dir),
                   "--tasks", self.tasks, "--prompt", self.prompt, "--frames", str(self.frames),
                   "--max-new-tokens", str(self.max_new_tokens), "--quiet"]
        if self.limit:
            command += ["--limit", str(self.limit)]
        if self.every:
            command += ["--checkpoint-every", str(self.every)]
        if self.data_root:
            command += ["--data-root", str(self.data_root)]
        if self.device:
            command += ["--device", "cpu" if self.device == "cpu" else "cuda"]
        return command

    def environment(self) -> dict[str, str]:
        """The evaluator's environment: ``cuda:N`` pins it to GPU N."""
        environment = dict(os.environ)
        if self.device and self.device.startswith("cuda:"):
            environment["CUDA_VISIBLE_DEVICES"] = self.device.split(":", 1)[1]
        for variable in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            environment.pop(variable, None)
        return environment


def add_auto_eval_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "automatic evaluation", "score every saved checkpoint with p2r-eval, in a separate "
        "process; results, leaderboard and scores-by-step plot land in OUTPUT/eval")
    group.add_argument("--eval-tasks", default=None,
                       help="benchmarks to evaluate each checkpoint on ('all' or a comma list); "
                            "off when not given")
    group.add_argument("--eval-limit", type=int, default=None, help="first N items per task")
    group.add_argument("--eval-every", type=int, default=0, metavar="STEPS",
                       help="evaluate only checkpoints whose step is a multiple of STEPS")
    group.add_argument("--eval-when", choices=("during", "end"), default="during",
                       help="during: after each save, next to training; end: after training")
    group.add_argument("--eval-device", default=None,
                       help="device of the evaluation process, e.g. cuda:1 or cpu")
    group.add_argument("--eval-data-root", type=Path, default=None,
                       help="benchmark data (default: the demo suite)")
    group.add_argument("--eval-frames", type=int, default=32)
    group.add_argument("--eval-max-new-tokens", type=int, default=1024)


def auto_eval_callbacks(args: argparse.Namespace, prompt: str) -> list[CheckpointEvaluator]:
    """The evaluator callback the command line asks for (none without --eval-tasks)."""
    if not args.eval_tasks:
        return []
    from p2r_train.tracking.auto_eval_callback import CheckpointEvaluator

    settings = AutoEvalSettings(
        tasks=args.eval_tasks, limit=args.eval_limit, every=args.eval_every,
        when=args.eval_when, device=args.eval_device, data_root=args.eval_data_root,
        prompt=prompt, frames=args.eval_frames, max_new_tokens=args.eval_max_new_tokens)
    return [CheckpointEvaluator(args.output, settings)]

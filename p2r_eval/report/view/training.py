"""A ``p2r-train`` output folder for the viewer: its dynamics plot, the scores-by-step plot
and each evaluated checkpoint (``RUN_DIR/eval/checkpoint-<step>``) as a run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from p2r_eval.eval.checkpoints import eval_dir, evaluated_checkpoints, is_checkpoint_run
from p2r_eval.report.view.runs import RunView, read_run_view

TRAINING_PLOTS = {"dynamics.png": "dynamics.png", "eval/scores_by_step.png": "scores_by_step.png"}


@dataclass(frozen=True)
class TrainingView:
    root: Path
    checkpoints: list[tuple[int, RunView]]
    plots: dict[str, Path]
    """Plot file name in the site → the file in the run folder."""

    @property
    def eval_folder(self) -> Path:
        return eval_dir(self.root)


def read_training_view(root: Path) -> TrainingView | None:
    """The training run in ``root``; None when ``root`` holds no ``checkpoint-<step>``."""
    if not is_checkpoint_run(root):
        return None
    checkpoints = [(step, read_run_view(folder)) for step, folder in evaluated_checkpoints(root)]
    plots = {name: root / source for source, name in TRAINING_PLOTS.items()
             if (root / source).exists()}
    return TrainingView(root, checkpoints, plots)

"""The trainer callback behind ``--eval-tasks`` (see training/tracking/auto_eval.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from p2r_train.tracking.auto_eval import AutoEvalSettings
from transformers import TrainerCallback


class CheckpointEvaluator(TrainerCallback):
    """Evaluates saved checkpoints in a separate process (see the module docstring)."""

    def __init__(self, run_dir: Path, settings: AutoEvalSettings) -> None:
        self.run_dir = Path(run_dir)
        self.settings = settings
        self.process: subprocess.Popen | None = None

    def launch(self) -> subprocess.Popen:
        log_path = self.run_dir / "eval" / "eval.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as log:
            return subprocess.Popen(self.settings.command(self.run_dir), stdout=log,
                                    stderr=subprocess.STDOUT, env=self.settings.environment())

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self) -> None:
        """Wait for the last evaluation launched, if any, to end."""
        if self.process is not None:
            self.process.wait()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero and self.settings.when == "during" and not self.running():
            self.process = self.launch()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.wait()

    def evaluate_final(self) -> None:
        """The last pass, once the final model is saved at the run folder's root (after
        ``on_train_end``): it evaluates whatever is left, the final model included."""
        self.wait()
        self.process = self.launch()
        self.wait()


def evaluate_final_models(trainer: Any, callbacks: list | None) -> None:
    """Run each :class:`CheckpointEvaluator`'s last pass (on the main process only)."""
    if not trainer.is_world_process_zero():
        return
    for callback in callbacks or []:
        if isinstance(callback, CheckpointEvaluator):
            callback.evaluate_final()

"""A training run from start to saved output, the same for SFT and PA-GRPO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from p2r_train.tracking.auto_eval_callback import evaluate_final_models
from p2r_train.tracking.checkpoints import resume_target

from p2r_eval.eval.checkpoints import record_starting_model


def train_and_save(trainer: Any, model: str, output: Path, *, resume: bool | str | None,
                   callbacks: list | None) -> Path:
    """Record ``model`` as the run's step 0 (``starting_model.json``), train (from the newest
    checkpoint when ``resume`` asks), save the final model with its processor and the trainer
    state (for ``p2r-train plot``) into ``output``, then evaluate what the automatic
    checkpoint evaluation in ``callbacks`` has not yet."""
    if trainer.is_world_process_zero():
        record_starting_model(Path(output), model)
    trainer.train(resume_from_checkpoint=resume_target(resume, output))
    trainer.save_model(str(output))
    trainer.save_state()
    evaluate_final_models(trainer, callbacks)
    return output

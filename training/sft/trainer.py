"""SFT warm-up on VideoP2R-CoT records, with TRL's ``SFTTrainer``.

TRL's SFT collator handles images, not video, so the trainer gets :class:`SFTCollator`
(decode at collate time, prompt masked out of the loss) and its own dataset preparation is
skipped (``skip_prepare_dataset``; rows keep their item columns, ``remove_unused_columns``
off). The checkpoint is the model and its *original* processor, saved with
``save_pretrained``, so ``p2r-eval --model DIR`` loads it like any checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from p2r_train.inputs.collate import SFTCollator, training_processor
from p2r_train.inputs.data import default_media_root, read_records, sft_rows, to_dataset
from p2r_train.inputs.vision import freeze_vision_tower
from p2r_train.tracking.checkpoints import ResumesThroughFromPretrained
from p2r_train.tracking.run import train_and_save
from trl import SFTConfig, SFTTrainer

from p2r_eval.media.requests import RequestBuilder
from p2r_eval.media.video import FramePolicy
from p2r_eval.models.vision_windows import group_window_attention

# Settings a video SFT run cannot do without; everything else is the caller's SFTConfig.
REQUIRED_SFT_SETTINGS: dict[str, Any] = {
    "dataset_kwargs": {"skip_prepare_dataset": True},
    "remove_unused_columns": False,
    "max_length": None,  # truncation would cut video placeholders off their features
}


class VideoSFTTrainer(ResumesThroughFromPretrained, SFTTrainer):
    """TRL's SFTTrainer whose resumed runs get their weights back (see
    :mod:`p2r_train.tracking.checkpoints`)."""


def sft_config(output_dir: str | Path, **settings: Any) -> SFTConfig:
    """An ``SFTConfig`` for video SFT: ``settings`` plus :data:`REQUIRED_SFT_SETTINGS`."""
    return SFTConfig(output_dir=str(output_dir), **{**settings, **REQUIRED_SFT_SETTINGS})


def build_sft_trainer(model: str, config: Any, rows: list[dict[str, Any]], *,
                      policy: FramePolicy, prompt_style: str = "p2r",
                      frame_cache: Path | None = None, freeze_vision: bool = False,
                      callbacks: list | None = None) -> VideoSFTTrainer:
    """A :class:`VideoSFTTrainer` over dataset ``rows`` (:func:`p2r_train.inputs.data.sft_rows`),
    prompts in ``prompt_style`` (:mod:`p2r_eval.core.prompts`)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model)
    builder = RequestBuilder(prompt_style, policy, frame_cache=frame_cache)
    trainer = VideoSFTTrainer(
        model=model,
        args=config,
        train_dataset=to_dataset(rows),
        processing_class=processor,
        data_collator=SFTCollator(training_processor(processor, policy), builder),
        callbacks=callbacks,
    )
    if trainer.model is None:
        raise RuntimeError(f"SFTTrainer loaded no model from {model}")
    group_window_attention(trainer.model)
    if freeze_vision:
        freeze_vision_tower(trainer.model)
    return trainer


def run_sft(model: str, data: Path, output: Path, config: Any, *, media_root: Path | None = None,
            policy: FramePolicy, process_aware: bool = True, frame_cache: Path | None = None,
            freeze_vision: bool = False, resume: bool | str | None = None,
            callbacks: list | None = None) -> Path:
    """Train and save the final model (with processor) and the trainer state (for
    ``p2r-train plot``) into ``output``, where ``starting_model.json`` names ``model`` (the
    run's step 0 for ``p2r-eval --model OUTPUT``). ``callbacks`` are extra trainer callbacks
    (e.g. the automatic checkpoint evaluation).

    ``process_aware=False`` is the paper's process-agnostic SFT: think/answer targets and
    Video-R1's prompt (``r1``); evaluate such a checkpoint with ``p2r-eval --prompt r1``.
    """
    rows = sft_rows(read_records(data), default_media_root(data, media_root),
                    process_aware=process_aware)
    trainer = build_sft_trainer(model, config, rows, policy=policy,
                                prompt_style="p2r" if process_aware else "r1",
                                frame_cache=frame_cache, freeze_vision=freeze_vision,
                                callbacks=callbacks)
    return train_and_save(trainer, model, output, resume=resume, callbacks=callbacks)

"""Resuming a run: which checkpoint, and loading its weights correctly.

Two things transformers' ``Trainer`` gets wrong for these runs, fixed here for both trainers:

- ``resume_from_checkpoint=True`` takes the newest ``checkpoint-<step>`` folder even when the
  run was killed while writing it (weights there, trainer state not yet):
  :func:`newest_complete_checkpoint` only takes folders whose ``trainer_state.json`` exists,
  the file the Trainer writes last.
- The Trainer loads a checkpoint's raw safetensors into the model with ``strict=False``.
  Qwen2.5-VL checkpoints are written under the legacy key names (``visual.*``,
  ``model.layers.*``) while the modules are ``model.visual.*`` / ``model.language_model.*``,
  so no key matches and training would silently go on from the initial weights.
  :class:`ResumesThroughFromPretrained` loads them through ``from_pretrained``, which maps
  the keys, and requires every key to match.

And one thing transformers gets wrong under DeepSpeed ZeRO-3 (5.23): a model loaded inside
``deepspeed.zero.Init`` keeps *every* key renaming its class knows, not only those that matched
the checkpoint, so ``save_pretrained`` writes ``model.model.layers.*`` instead of
``model.layers.*``. ``from_pretrained`` maps those back, but other loaders (vLLM) do not.
:func:`keep_used_weight_conversions` restores the normal behaviour before every save.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p2r_eval.eval.checkpoints import checkpoint_complete

logger = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"


def checkpoint_step(path: Path) -> int:
    """The step of a ``checkpoint-<step>`` folder, -1 for any other name."""
    match = re.fullmatch(r"checkpoint-(\d+)", path.name)
    return int(match.group(1)) if match else -1


def newest_complete_checkpoint(run_dir: Path) -> Path | None:
    """The newest ``checkpoint-<step>`` in ``run_dir`` that the Trainer finished saving
    (config, weights and a readable trainer state: p2r_eval's rule for evaluation too)."""
    complete = [p for p in Path(run_dir).glob("checkpoint-*")
                if checkpoint_step(p) >= 0 and checkpoint_complete(p)]
    return max(complete, key=checkpoint_step, default=None)


def resume_target(resume: bool | str | None, output_dir: Path) -> str | None:
    """What to pass the Trainer as ``resume_from_checkpoint``: an explicit path as given;
    for ``True`` the newest complete checkpoint (``None``, with a warning, when there is
    none yet: the run starts from the beginning)."""
    if resume is None or resume is False:
        return None
    if resume is not True:
        return str(resume)
    checkpoint = newest_complete_checkpoint(output_dir)
    if checkpoint is None:
        logger.warning("--resume: no complete checkpoint in %s, starting from the beginning",
                       output_dir)
        return None
    return str(checkpoint)


def keep_used_weight_conversions(model: Any) -> None:
    """Keep only the key renamings that matched the checkpoint ``model`` was loaded from, so
    ``save_pretrained`` writes the checkpoint's own key names (what transformers does outside
    ZeRO-3)."""
    conversions = getattr(model, "_weight_conversions", None)
    if conversions:
        model._weight_conversions = [c for c in conversions if c.was_used()]


if TYPE_CHECKING:
    from transformers import Trainer as _Trainer
else:  # a mixin: the trainer class it is mixed into comes after it
    _Trainer = object


class ResumesThroughFromPretrained(_Trainer):
    """Trainer mixin: a resumed run gets its weights through ``from_pretrained``, and every
    checkpoint is written under the key names the model was loaded with (also under ZeRO-3)."""

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        keep_used_weight_conversions(self.accelerator.unwrap_model(self.model))
        super()._save(output_dir, state_dict=state_dict)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        target = model if model is not None else self.model
        if target is None:
            raise RuntimeError(f"no model to load {resume_from_checkpoint} into")
        if self.is_fsdp_enabled or hasattr(target, "peft_config"):
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            return
        from transformers import PreTrainedModel

        if not isinstance(target, PreTrainedModel):
            raise TypeError(f"resuming through from_pretrained needs a transformers model, "
                            f"got {type(target).__name__}")
        saved = type(target).from_pretrained(resume_from_checkpoint, dtype=target.dtype)
        target.load_state_dict(saved.state_dict(), strict=True)

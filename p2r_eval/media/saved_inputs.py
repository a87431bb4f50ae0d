"""``--save-inputs DIR``: each item's exact model inputs, one safetensors file per item.

``DIR/<task>/<item id>.safetensors`` holds every tensor the model's processor returned for the
item (``input_ids``, ``attention_mask``, ``pixel_values_videos``, ``video_grid_thw``,
``second_per_grid_ts``, ...), as the processor made them (before the move to the model's
device and dtype), with the task and item id in the file's metadata. Diffing two harnesses'
files shows exactly what each fed the model. Item ids are percent-encoded where they hold
characters that are unsafe in a file name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

SUFFIX = ".safetensors"


def inputs_path(root: Path, task: str, item_id: str) -> Path:
    """Where the inputs of item ``item_id`` of ``task`` are written under ``root``."""
    return Path(root) / quote(task, safe="") / f"{quote(item_id, safe='')}{SUFFIX}"


def save_model_inputs(root: Path, task: str, item_id: str, inputs: Mapping[str, Any]) -> Path:
    """Write one item's processor outputs (tensors, or values torch can make tensors of);
    written to a temporary file and renamed, so a file present is complete."""
    import torch
    from safetensors.torch import save_file

    tensors = {name: torch.as_tensor(value).detach().cpu().contiguous()
               for name, value in inputs.items()}
    path = inputs_path(root, task, item_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=SUFFIX)
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata={"task": task, "item_id": item_id})
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_model_inputs(path: Path) -> dict[str, Any]:
    """The tensors of a saved inputs file, by name."""
    from safetensors.torch import load_file

    return load_file(str(path))

"""A local text model as a judge backend: transformers, a folder on disk, greedy decoding.

Any chat model with a chat template works: a text-only causal LM (an open instruct model) or
an image-text-to-text model used on text alone. Real verdicts need a real instruct model; the
random-weight demo model of the tests produces gibberish, which parses to ``sufficient=None``.

The model id (part of every cache key) is the folder name plus a hash of ``config.json`` and
the weight files' names and sizes: cheap to compute, and it changes when the checkpoint does.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

from p2r_eval.judge.base import Completion, JudgeConfigError
from p2r_eval.judge.prompts import JudgePrompt

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def local_model_id(folder: Path) -> str:
    """``<folder name>@<12 hex>``: the folder's config and weight files, hashed cheaply."""
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for path in sorted(folder.iterdir()):
        if path.suffix in WEIGHT_SUFFIXES:
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return f"{folder.name}@{digest.hexdigest()[:12]}"


def check_model_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise JudgeConfigError(f"local judge model folder {folder} does not exist")
    if not (folder / "config.json").is_file():
        raise JudgeConfigError(f"local judge model folder {folder} has no config.json")


class LocalBackend:
    kind = "local"

    def __init__(self, folder: Path, *, device: str = "cpu", dtype: str = "auto") -> None:
        folder = Path(folder)
        check_model_folder(folder)
        self.folder = folder
        self.model = local_model_id(folder)
        self.device = device
        self.tokenizer, self.network = _load(folder, device, dtype)
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.kind,
            "model": self.model,
            "temperature": 0.0,
            "device": self.device,
        }

    def complete(self, prompt: JudgePrompt, max_tokens: int) -> Completion:
        import torch

        messages = [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ]
        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
        ).to(self.device)
        prompt_length = inputs["input_ids"].shape[1]
        with self._lock, torch.inference_mode():
            output = self.network.generate(
                **inputs,
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        new_tokens = output[0, prompt_length:]
        return Completion(
            text=self.tokenizer.decode(new_tokens, skip_special_tokens=True),
            input_tokens=int(prompt_length),
            output_tokens=int(new_tokens.shape[0]),
        )


def _load(folder: Path, device: str, dtype: str) -> tuple[Any, Any]:
    """The tokenizer and model of ``folder``: a causal LM when transformers maps its config
    type to one, otherwise an image-text-to-text model (used on text alone)."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
        AutoTokenizer,
    )
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as error:
        raise JudgeConfigError(f"cannot load the local judge model in {folder}: {error}") from error
    if tokenizer.chat_template is None:
        raise JudgeConfigError(f"the tokenizer in {folder} has no chat template")
    model_class = (
        AutoModelForCausalLM
        if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        else AutoModelForImageTextToText
    )
    model = model_class.from_pretrained(folder, dtype=dtype)
    # transformers types to() as functools.wraps(Module.to): a model as first argument
    model = model.to(device).eval()  # type: ignore[arg-type]
    return tokenizer, model

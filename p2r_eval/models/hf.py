"""The transformers backend: any image-text-to-text checkpoint with a processor chat template.

Model-agnostic on purpose: the chat comes from the processor's own template, media go through
the processor's own image and video processors, and the token ids to stop at, pad with or
suppress come from the checkpoint's configs, never from branches on model names.

Decisions that affect outputs:

- Video frames arrive already sampled (:func:`p2r_eval.video.sample_frames`); the video
  processor is told not to sample again (``do_sample_frames=False``) and gets each video's
  metadata, so models with temporal position ids (Qwen2.5-VL) see the real frame rate.
- Decoding is determined by :class:`DecodingSettings`: the checkpoint's own defaults that
  would change it (e.g. Qwen2.5-VL's ``repetition_penalty=1.05``, a ``top_k``, beams) are
  overridden, so that what the results file records is what ran.
- Multimodal placeholder tokens (image/video pads, vision start/end) are suppressed during
  generation: a sampled video pad would break the next forward pass.
- Outputs are decoded with special tokens kept (the process tags must survive even in a
  tokenizer that marks them special), then cut at the first end-of-sequence token.
"""

from __future__ import annotations

import hashlib
import importlib.util
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from p2r_eval.models.base import BackendError, DecodingSettings, Request

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
WEIGHT_FILE_PATTERNS = ("*.safetensors", "*.bin")
# Files that decide how text and media become model inputs.
PROCESSOR_FILES = (
    "chat_template.jinja",
    "chat_template.json",
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
# Config attributes that name multimodal placeholder tokens (the text model must never emit).
MULTIMODAL_TOKEN_ATTRIBUTES = (
    "image_token_id",
    "image_token_index",
    "video_token_id",
    "video_token_index",
    "audio_token_id",
    "audio_token_index",
    "vision_start_token_id",
    "vision_end_token_id",
)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto``: bfloat16 on a GPU that supports it (else float16), float32 on CPU."""
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in DTYPES:
        raise BackendError(f"unknown dtype {dtype!r}; choose auto or one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def default_attn_implementation(device: str) -> str:
    """flash-attention-2 on a GPU where the package is installed, otherwise SDPA."""
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def sha256_of_files(paths: Sequence[Path]) -> str:
    """One sha256 over the names and contents of ``paths`` (in the given order)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def checkpoint_directory(model_path: str) -> Path:
    """The local folder holding the checkpoint's files: ``model_path`` itself, or the
    hub cache snapshot that ``from_pretrained`` resolved a hub id to."""
    from transformers.utils import cached_file

    return Path(cached_file(model_path, "config.json")).parent


def weight_files(directory: Path) -> list[Path]:
    for pattern in WEIGHT_FILE_PATTERNS:
        files = sorted(directory.glob(pattern))
        if files:
            return files
    raise BackendError(f"no weight files ({', '.join(WEIGHT_FILE_PATTERNS)}) in {directory}")


def limit_pixels(processor: Any, max_pixels: int) -> None:
    """Cap the pixels per image and per video frame through the sub-processors' own
    ``max_pixels`` setting (lowering their ``min_pixels`` to it where that was higher,
    so that small frames are not blown up past the cap).

    Sub-processors are rebuilt from their dict rather than given ``max_pixels`` through
    ``AutoProcessor.from_pretrained``: that route also stores the value in the tokenizer's
    init kwargs, from where transformers forwards it to every processor call (deprecated).
    """
    limited = 0
    for attribute in ("image_processor", "video_processor"):
        sub = getattr(processor, attribute, None)
        if sub is None:
            continue
        accepted = typing.get_type_hints(getattr(sub, "valid_kwargs", dict))
        if "max_pixels" not in accepted or "min_pixels" not in accepted:
            continue
        settings = sub.to_dict()
        settings["max_pixels"] = max_pixels
        min_pixels = getattr(sub, "min_pixels", None) or dict(settings.get("size") or {}).get(
            "shortest_edge"
        )
        if min_pixels is not None:
            settings["min_pixels"] = min(int(min_pixels), max_pixels)
        setattr(processor, attribute, type(sub).from_dict(settings))
        limited += 1
    if not limited:
        raise BackendError(
            f"max_pixels was given but {type(processor).__name__} has no image or video "
            "processor with a max_pixels setting"
        )


def chat_messages(request: Request) -> list[dict[str, Any]]:
    """The chat of one request: optional system turn, then one user turn whose content is
    the image and/or video placeholders followed by the prompt text."""
    content: list[dict[str, Any]] = []
    if request.image is not None:
        content.append({"type": "image"})
    if request.frames is not None:
        content.append({"type": "video"})
    content.append({"type": "text", "text": request.prompt})
    messages = [{"role": "user", "content": content}]
    if request.system is not None:
        system = [{"type": "text", "text": request.system}]
        messages.insert(0, {"role": "system", "content": system})
    return messages


def check_media(request: Request) -> None:
    """Reject media the processors would misread, naming the item."""
    where = f"{request.task}/{request.item_id}"
    if request.frames is not None:
        frames = request.frames
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
            raise BackendError(
                f"{where}: frames must be a non-empty uint8 array (T, H, W, 3), "
                f"got {frames.dtype} {frames.shape}"
            )
        if request.fps is None or request.fps <= 0:
            raise BackendError(f"{where}: a video request needs the fps its frames represent")
    if request.image is not None:
        image = request.image
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise BackendError(
                f"{where}: image must be a uint8 array (H, W, 3), got {image.dtype} {image.shape}"
            )


def video_metadata(request: Request) -> dict[str, Any]:
    """What the video processor needs to know about already sampled frames: their count
    and the rate they represent (``sampled_fps`` then equals ``request.fps``)."""
    frames = request.frames
    assert frames is not None and request.fps is not None
    return {
        "total_num_frames": len(frames),
        "fps": float(request.fps),
        "height": int(frames.shape[1]),
        "width": int(frames.shape[2]),
        "frames_indices": list(range(len(frames))),
    }


@dataclass(frozen=True)
class StopTokens:
    """Token ids that end an output (``end``) or only fill it (``pad``)."""

    end: frozenset[int]
    pad: int | None

    def trim(self, token_ids: Sequence[int]) -> list[int]:
        """The ids up to (excluding) the first end token, without padding."""
        kept = []
        for token_id in token_ids:
            if token_id in self.end:
                break
            if token_id != self.pad:
                kept.append(token_id)
        return kept


def as_id_set(value: int | Sequence[int] | None) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, int):
        return {value}
    return {int(v) for v in value}


def decode_output(tokenizer: Any, token_ids: Sequence[int], stops: StopTokens) -> str:
    """Decode generated ids with special tokens kept, after cutting at the first end token."""
    return tokenizer.decode(
        stops.trim(token_ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
    )


class HFBackend:
    """Generation with a transformers image-text-to-text model (see the module docs)."""

    name = "hf"
    needs_media = True

    def __init__(
        self,
        model_path: Path | str,
        *,
        decoding: DecodingSettings,
        device: str | None = None,
        dtype: str = "auto",
        attn_implementation: str | None = None,
        max_pixels: int | None = None,
    ) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_path = str(model_path)
        self._decoding = decoding
        self.device = device or default_device()
        self.torch_dtype = resolve_dtype(dtype, self.device)
        self.attn_implementation = attn_implementation or default_attn_implementation(self.device)
        self.max_pixels = max_pixels
        try:
            self.processor = AutoProcessor.from_pretrained(self.model_path)
            self.model = AutoModelForImageTextToText.from_pretrained(
                self.model_path,
                dtype=self.torch_dtype,
                attn_implementation=self.attn_implementation,
                device_map=self.device if self.device.startswith("cuda") else None,
            )
        except (OSError, ValueError, ImportError) as error:
            raise BackendError(f"could not load model {self.model_path!r}: {error}") from error
        self.model.to(self.device).eval()
        if max_pixels is not None:
            limit_pixels(self.processor, max_pixels)
        if getattr(self.processor, "chat_template", None) is None:
            raise BackendError(f"{self.model_path}: the processor has no chat template")
        self.stop_tokens = self._stop_tokens()
        self.suppressed_token_ids = self._multimodal_token_ids()

    def decoding(self) -> DecodingSettings:
        return self._decoding

    def _stop_tokens(self) -> StopTokens:
        generation = self.model.generation_config
        tokenizer = self.processor.tokenizer
        end = as_id_set(generation.eos_token_id) | as_id_set(tokenizer.eos_token_id)
        pad = generation.pad_token_id if generation.pad_token_id is not None else (
            tokenizer.pad_token_id
        )
        return StopTokens(end=frozenset(end), pad=pad)

    def _multimodal_token_ids(self) -> list[int]:
        """Placeholder ids declared by the model config and the processor."""
        ids: set[int] = set()
        for attribute in MULTIMODAL_TOKEN_ATTRIBUTES:
            ids |= as_id_set(getattr(self.model.config, attribute, None))
        for attribute in ("image_token_ids", "video_token_ids", "audio_token_ids"):
            ids |= {i for i in getattr(self.processor, attribute, None) or [] if i is not None}
        return sorted(ids)

    def generation_kwargs(self) -> dict[str, Any]:
        """generate() arguments from the decoding settings alone: the checkpoint's
        generation config still gives the stop and pad ids, but its beam count, repetition
        penalty and top-k are overridden (sampling-only values it sets are unused when greedy)."""
        settings = self._decoding
        kwargs: dict[str, Any] = {
            "max_new_tokens": settings.max_new_tokens,
            "do_sample": settings.do_sample,
            "num_beams": 1,
            "repetition_penalty": 1.0,
            "suppress_tokens": self.suppressed_token_ids,
            "pad_token_id": self.stop_tokens.pad,
        }
        if settings.do_sample:
            kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=0)
        return kwargs

    def model_inputs(self, requests: Sequence[Request]) -> Any:
        """One left-padded batch of processor outputs for ``requests``."""
        for request in requests:
            check_media(request)
        texts = [
            self.processor.apply_chat_template(
                chat_messages(request), add_generation_prompt=True, tokenize=False
            )
            for request in requests
        ]
        images = [request.image for request in requests if request.image is not None]
        videos = [request.frames for request in requests if request.frames is not None]
        media: dict[str, Any] = {}
        if images:
            media["images"] = images
        if videos:
            media["videos"] = videos
            media["video_metadata"] = [video_metadata(r) for r in requests if r.frames is not None]
            media["do_sample_frames"] = False
        inputs = self.processor(
            text=texts, padding=True, padding_side="left", return_tensors="pt", **media
        )
        return inputs.to(self.model.device, dtype=self.model.dtype)

    def generate(self, requests: Sequence[Request]) -> list[str]:
        if not requests:
            return []
        inputs = self.model_inputs(requests)
        if self._decoding.do_sample:
            torch.manual_seed(self._decoding.seed)
        with torch.inference_mode():
            sequences = self.model.generate(**inputs, **self.generation_kwargs())
        new_tokens = sequences[:, inputs["input_ids"].shape[1]:].tolist()
        tokenizer = self.processor.tokenizer
        return [decode_output(tokenizer, ids, self.stop_tokens) for ids in new_tokens]

    @cached_property
    def _checkpoint_hashes(self) -> dict[str, str]:
        directory = checkpoint_directory(self.model_path)
        processor_files = [directory / n for n in PROCESSOR_FILES if (directory / n).is_file()]
        return {
            "config_sha256": sha256_of_files([directory / "config.json"]),
            "weights_sha256": sha256_of_files(weight_files(directory)),
            "processor_sha256": sha256_of_files(processor_files),
        }

    def fingerprint(self) -> dict[str, Any]:
        import transformers

        return {
            "backend": self.name,
            "path": self.model_path,
            "model_class": type(self.model).__name__,
            **self._checkpoint_hashes,
            "dtype": str(self.torch_dtype).removeprefix("torch."),
            "device": self.device,
            "attn_implementation": self.attn_implementation,
            "max_pixels": self.max_pixels,
            "transformers_version": transformers.__version__,
        }

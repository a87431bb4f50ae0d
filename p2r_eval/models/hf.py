"""The transformers backend: any image-text-to-text checkpoint with a processor chat template.

Model-agnostic on purpose: the chat comes from the processor's own template, media go through
the processor's own image and video processors, and the token ids to stop at, pad with or
suppress come from the checkpoint's configs, never from branches on model names.

Decisions that affect outputs:

- Video frames arrive already sampled (:func:`p2r_eval.media.video.sample_frames`), and under a
  named input policy already resized (:mod:`p2r_eval.media.input_policies`; the processor keeps
  the checkpoint's own bounds, which leave that size as it is); under the uniform policy,
  resized after decoding to the processor's own size where p2r knows its rule
  (:mod:`p2r_eval.models.frame_size`, checked item by item); the video processor is told not to
  sample again (``do_sample_frames=False``) and gets each video's metadata, so models with
  temporal position ids (Qwen2.5-VL) see the real frame rate.
- Decoding is determined by :class:`DecodingSettings`: the checkpoint's own defaults that
  would change it (e.g. Qwen2.5-VL's ``repetition_penalty=1.05``, a ``top_k``, beams) are
  overridden, so that what the results file records is what ran.
- Multimodal placeholder tokens (image/video pads, vision start/end) are suppressed during
  generation: a sampled video pad would break the next forward pass.
- Outputs are decoded with special tokens kept (the process tags must survive even in a
  tokenizer that marks them special), then cut at the first end-of-sequence token.
- ``max_pixels`` is set on the sub-processors that have such a cap (Qwen's); a processor
  that resizes to a fixed size (LLaVA-OneVision's) has none, and the run records None.

Speed: on a GPU the weights are bfloat16 (float16 where bf16 is unsupported) and attention is
flash-attention-2 when transformers finds a usable flash-attn, else PyTorch's SDPA; a batch
is one left-padded generate call under ``torch.inference_mode``. CPU runs stay float32 + SDPA.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from p2r_eval.core.request import Request
from p2r_eval.models.base import BackendError, DecodingSettings
from p2r_eval.models.frame_size import check_presized, decoding_frame_size
from p2r_eval.models.video_fast_path import PROCESSOR_KWARGS, VideoFastPath
from p2r_eval.models.vision_windows import group_window_attention

log = logging.getLogger(__name__)

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


def default_attn_implementation(device: str, dtype: torch.dtype) -> str:
    """flash-attention-2 for half precision on a GPU where transformers finds a usable
    flash-attn package, otherwise PyTorch's SDPA (which picks its own fused kernel)."""
    from transformers.utils import is_flash_attn_2_available

    half = dtype in (torch.bfloat16, torch.float16)
    if device.startswith("cuda") and half and is_flash_attn_2_available():
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

    config = cached_file(model_path, "config.json")
    if config is None:
        raise FileNotFoundError(f"{model_path}: the checkpoint has no config.json")
    return Path(config).parent


def weight_files(directory: Path) -> list[Path]:
    for pattern in WEIGHT_FILE_PATTERNS:
        files = sorted(directory.glob(pattern))
        if files:
            return files
    raise BackendError(f"no weight files ({', '.join(WEIGHT_FILE_PATTERNS)}) in {directory}")


def pixel_limited_processors(processor: Any) -> list[str]:
    """The sub-processors of ``processor`` (``image_processor``, ``video_processor``) that
    have a ``max_pixels`` setting. Fixed-resolution processors (LLaVA-OneVision's resize
    every frame to one size) have none."""
    names = []
    for attribute in ("image_processor", "video_processor"):
        sub = getattr(processor, attribute, None)
        if sub is None:
            continue
        accepted = typing.get_type_hints(getattr(sub, "valid_kwargs", dict))
        if "max_pixels" in accepted and "min_pixels" in accepted:
            names.append(attribute)
    return names


def limit_pixels(processor: Any, max_pixels: int) -> None:
    """Cap the pixels per image and per video frame through the sub-processors' own
    ``max_pixels`` setting (lowering their ``min_pixels`` to it where that was higher,
    so that small frames are not blown up past the cap).

    Sub-processors are rebuilt from their dict rather than given ``max_pixels`` through
    ``AutoProcessor.from_pretrained``: that route also stores the value in the tokenizer's
    init kwargs, from where transformers forwards it to every processor call (deprecated).
    """
    limited = pixel_limited_processors(processor)
    for attribute in limited:
        sub = getattr(processor, attribute)
        settings = sub.to_dict()
        settings["max_pixels"] = max_pixels
        min_pixels = getattr(sub, "min_pixels", None) or dict(settings.get("size") or {}).get(
            "shortest_edge"
        )
        if min_pixels is not None:
            settings["min_pixels"] = min(int(min_pixels), max_pixels)
        setattr(processor, attribute, type(sub).from_dict(settings))
    if not limited:
        raise BackendError(
            f"max_pixels was given but {type(processor).__name__} has no image or video "
            "processor with a max_pixels setting"
        )


def applicable_max_pixels(processor: Any, max_pixels: int | None, model: str) -> int | None:
    """``max_pixels`` where the processor has a pixel cap to set, else None (logged): a
    fixed-resolution processor decides the frame size itself, and the run records that no
    cap applied instead of one that did nothing."""
    if max_pixels is None or pixel_limited_processors(processor):
        return max_pixels
    log.warning(
        "%s: %s resizes every image and frame to a fixed size; max_pixels=%d does not apply",
        model, type(processor).__name__, max_pixels,
    )
    return None


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


def prompt_text(processor: Any, request: Request) -> str:
    """The prompt of one request as the model reads it: its chat rendered by the processor's
    own chat template, ending with the assistant turn's opening. Every backend that sends
    text to a model builds it here, so that hf and vllm runs see the same prompt."""
    return processor.apply_chat_template(
        chat_messages(request), add_generation_prompt=True, tokenize=False
    )


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
        video_fps(request)
    if request.image is not None:
        image = request.image
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise BackendError(
                f"{where}: image must be a uint8 array (H, W, 3), got {image.dtype} {image.shape}"
            )


def video_fps(request: Request) -> float:
    """The rate a video request's frames represent; BackendError, naming the item, if none."""
    if request.fps is None or request.fps <= 0:
        raise BackendError(f"{request.task}/{request.item_id}: a video request needs the fps "
                           "its frames represent")
    return float(request.fps)


def video_metadata(request: Request) -> dict[str, Any]:
    """What the video processor needs to know about already sampled frames: their count
    and the rate they represent (``sampled_fps`` then equals ``request.fps``)."""
    frames = request.frames
    if frames is None:
        raise BackendError(f"{request.task}/{request.item_id}: not a video request")
    return {
        "total_num_frames": len(frames),
        "fps": video_fps(request),
        "height": int(frames.shape[1]),
        "width": int(frames.shape[2]),
        "frames_indices": list(range(len(frames))),
    }


def stacks_videos(processor: Any) -> bool:
    """True when the processor stacks a batch's videos into one tensor, so that only videos
    with the same number of frames can share a batch: its video processor returns the frames
    alone, without a per-video grid (Qwen's ``video_grid_thw``) that lets videos of any
    length share a flat patch sequence. LLaVA-OneVision's stacks; Qwen-VL's do not."""
    video_processor = getattr(processor, "video_processor", None)
    if video_processor is None:
        return False
    return not any(name.endswith("_grid_thw") for name in video_processor.model_input_names)


def stackable_groups(requests: Sequence[Request], by_frame_count: bool) -> list[list[int]]:
    """Indices of ``requests`` split into batches the processor can stack: all of them in
    one, or, ``by_frame_count``, one per number of video frames (requests without a video
    join the first batch), each in request order."""
    if not by_frame_count:
        return [list(range(len(requests)))] if requests else []
    by_count: dict[int, list[int]] = {}
    without_video: list[int] = []
    for index, request in enumerate(requests):
        if request.frames is None:
            without_video.append(index)
        else:
            by_count.setdefault(len(request.frames), []).append(index)
    batches = list(by_count.values())
    if without_video and batches:
        batches[0] = sorted(batches[0] + without_video)
    elif without_video:
        batches = [without_video]
    return batches


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

    def ended(self, token_ids: Sequence[int]) -> bool:
        """True when the output stopped at an end token (not at the token limit)."""
        return any(token_id in self.end for token_id in token_ids)


@dataclass(frozen=True)
class Generation:
    """One output with its token counts (the end token, when generated, counts as one)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    stopped: bool


def as_id_set(value: int | Sequence[int] | None) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, int):
        return {value}
    return {int(v) for v in value}


def stop_tokens(generation_config: Any, tokenizer: Any) -> StopTokens:
    """End ids from the checkpoint's generation config and its tokenizer; the pad id from
    the generation config, else the tokenizer's."""
    end = as_id_set(getattr(generation_config, "eos_token_id", None)) | as_id_set(
        tokenizer.eos_token_id
    )
    pad = getattr(generation_config, "pad_token_id", None)
    return StopTokens(end=frozenset(end), pad=pad if pad is not None else tokenizer.pad_token_id)


def checkpoint_hashes(model_path: str) -> dict[str, str]:
    """sha256 of the config, the weights and the processor files of a checkpoint."""
    directory = checkpoint_directory(model_path)
    processor_files = [directory / n for n in PROCESSOR_FILES if (directory / n).is_file()]
    return {
        "config_sha256": sha256_of_files([directory / "config.json"]),
        "weights_sha256": sha256_of_files(weight_files(directory)),
        "processor_sha256": sha256_of_files(processor_files),
    }


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
        save_inputs: Path | None = None,
    ) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_path = str(model_path)
        self.save_inputs = save_inputs
        self._decoding = decoding
        self.device = device or default_device()
        self.torch_dtype = resolve_dtype(dtype, self.device)
        self.attn_implementation = attn_implementation or default_attn_implementation(
            self.device, self.torch_dtype
        )
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
        # transformers types to() as functools.wraps(Module.to): a model as first argument
        self.model.to(self.device).eval()  # type: ignore[arg-type]
        self.max_pixels = applicable_max_pixels(self.processor, max_pixels, self.model_path)
        if self.max_pixels is not None:
            limit_pixels(self.processor, self.max_pixels)
        if getattr(self.processor, "chat_template", None) is None:
            raise BackendError(f"{self.model_path}: the processor has no chat template")
        self.stop_tokens = stop_tokens(self.model.generation_config, self.processor.tokenizer)
        self.suppressed_token_ids = self._multimodal_token_ids()
        self.video_fast_path = VideoFastPath.of(self.processor)
        self.frame_size = decoding_frame_size(self.processor)
        group_window_attention(self.model)

    def decoding(self) -> DecodingSettings:
        return self._decoding

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
        """:meth:`processor_outputs` on the model's device, floats in the model's dtype."""
        return self.processor_outputs(requests).to(self.model.device, dtype=self.model.dtype)

    def processor_outputs(self, requests: Sequence[Request]) -> Any:
        """One left-padded batch of processor outputs for ``requests``, as the processor
        returns them (through :mod:`p2r_eval.models.video_fast_path` where the processor
        has one: the same floats, faster)."""
        for request in requests:
            check_media(request)
            check_presized(self.processor, request)
        texts = [prompt_text(self.processor, request) for request in requests]
        images = [request.image for request in requests if request.image is not None]
        videos: list[Any] = [r.frames for r in requests if r.frames is not None]
        fast = self.video_fast_path if videos else None
        media: dict[str, Any] = {}
        if images:
            media["images"] = images
        if videos:
            media["videos"] = [fast.frames(v) for v in videos] if fast else videos
            media["video_metadata"] = [video_metadata(r) for r in requests if r.frames is not None]
            media["do_sample_frames"] = False
            if fast is not None:
                media["videos_kwargs"] = PROCESSOR_KWARGS
        outputs = self.processor(
            text=texts, padding=True, padding_side="left", return_tensors="pt", **media
        )
        if fast is not None:
            outputs["pixel_values_videos"] = fast.normalise(outputs["pixel_values_videos"])
        return outputs

    def save_model_inputs(self, requests: Sequence[Request], outputs: Any) -> None:
        """Write each request's processor outputs under ``save_inputs`` (a request of a batch
        is processed again alone: the same tensors without the batch's left padding)."""
        from p2r_eval.media.saved_inputs import save_model_inputs

        assert self.save_inputs is not None
        for request in requests:
            alone = outputs if len(requests) == 1 else self.processor_outputs([request])
            save_model_inputs(self.save_inputs, request.task, request.item_id, alone)

    def with_decoding(self, decoding: DecodingSettings) -> HFBackend:
        """This backend (the same loaded model) generating with other decoding settings."""
        other = copy.copy(self)
        other._decoding = decoding
        return other

    def with_max_pixels(self, max_pixels: int | None) -> HFBackend:
        """This backend (the same loaded model) capping frames at ``max_pixels`` (None: the
        processor's own bounds, those of a backend loaded without a cap)."""
        if max_pixels == self.max_pixels:
            return self
        if self.max_pixels is not None:
            raise BackendError(f"{self.model_path}: loaded with max_pixels={self.max_pixels}; "
                               f"cannot serve max_pixels={max_pixels}")
        other = copy.copy(self)
        other.processor = copy.copy(self.processor)
        other.max_pixels = applicable_max_pixels(other.processor, max_pixels, self.model_path)
        if other.max_pixels is not None:
            limit_pixels(other.processor, other.max_pixels)
        other.frame_size = decoding_frame_size(other.processor)
        return other

    def generate(self, requests: Sequence[Request]) -> list[str]:
        """One output per request, in order; one generate call per stackable group."""
        return [generation.text for generation in self.generate_counted(requests)]

    def generate_counted(self, requests: Sequence[Request]) -> list[Generation]:
        """:meth:`generate` with each output's token counts."""
        outputs: dict[int, Generation] = {}
        for group in stackable_groups(requests, stacks_videos(self.processor)):
            generations = self.generate_batch([requests[index] for index in group])
            outputs.update(zip(group, generations, strict=True))
        return [outputs[index] for index in range(len(requests))]

    def generate_batch(self, requests: Sequence[Request]) -> list[Generation]:
        """The outputs of one left-padded generate call over ``requests``."""
        outputs = self.processor_outputs(requests)
        if self.save_inputs is not None:
            self.save_model_inputs(requests, outputs)
        inputs = outputs.to(self.model.device, dtype=self.model.dtype)
        if self._decoding.do_sample:
            torch.manual_seed(self._decoding.seed)
        with torch.inference_mode():
            sequences = self.model.generate(**inputs, **self.generation_kwargs())
        new_tokens = sequences[:, inputs["input_ids"].shape[1]:].tolist()
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
        tokenizer = self.processor.tokenizer
        stops = self.stop_tokens
        return [
            Generation(
                text=decode_output(tokenizer, ids, stops),
                prompt_tokens=int(prompt_length),
                completion_tokens=len(stops.trim(ids)) + int(stops.ended(ids)),
                stopped=stops.ended(ids),
            )
            for ids, prompt_length in zip(new_tokens, prompt_lengths, strict=True)
        ]

    @cached_property
    def _checkpoint_hashes(self) -> dict[str, str]:
        return checkpoint_hashes(self.model_path)

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

"""The vLLM backend: the same requests as the hf backend, run by vLLM's in-process ``LLM``.

What it shares with :mod:`p2r_eval.models.hf`, by calling the same functions:

- the prompt: :func:`~p2r_eval.models.hf.prompt_text`, the checkpoint's processor chat template
  over the same chat; vLLM expands the single image/video placeholder itself;
- the frames: the arrays :func:`p2r_eval.media.video.sample_frames` produced, handed over unchanged
  as ``(frames, metadata)`` with the metadata of :func:`~p2r_eval.models.hf.video_metadata`,
  plus ``do_sample_frames=False`` and the frames' rate (``fps``) as processor arguments, so
  that vLLM never samples again and Qwen2.5-VL's temporal position ids see the real rate;
- the pixel cap: passed to vLLM's processor as ``max_pixels`` where the processor has one;
  under a named input policy (:mod:`p2r_eval.media.input_policies`) the frames arrive already
  resized and no cap is passed, so both backends' processors keep the checkpoint's bounds;
- stop ids, and decoding of the generated ids (special tokens kept, cut at the first end id).

Decoding follows :class:`DecodingSettings`: greedy is ``temperature=0``; sampling uses its
temperature, top_p and seed (the paper's protocol is temperature 0.1, top_p 0.001); top-k and
the repetition penalty are switched off explicitly, whatever the checkpoint's defaults.

Differences from the hf backend: vision placeholder tokens are not suppressed (vLLM never
re-encodes its own outputs, so a sampled pad cannot break the next step); vLLM's processor
keeps its own ``min_pixels`` (the hf backend lowers it to ``max_pixels`` when it is higher,
which matters only for caps below Qwen's video minimum of 128*28*28). The ``(frames,
metadata)`` form needs a recent vLLM, whose parser accepts it for every model: it keeps the
metadata for models that declare they need it and drops it for the others (Qwen2.5-VL),
which get the rate from the ``fps`` argument; older versions took bare frame arrays only.

vllm is an optional extra (``pip install 'p2r[vllm]'``) that needs a CUDA machine; it is
imported only when this backend is created. Tests run everything up to the ``LLM`` call
against a stand-in module; the real engine has not been run by this project's tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from p2r_eval.core.request import Request
from p2r_eval.models.base import BackendError, DecodingSettings
from p2r_eval.models.hf import (
    StopTokens,
    applicable_max_pixels,
    check_media,
    checkpoint_hashes,
    decode_output,
    prompt_text,
    stop_tokens,
    video_fps,
    video_metadata,
)

if TYPE_CHECKING:
    from p2r_eval.media.video import ProcessorFrameSize

VLLM_INSTALL_HINT = "pip install 'p2r[vllm]'"
# One image or one video per request: what a Request can carry.
MEDIA_PER_PROMPT = {"image": 1, "video": 1}


def import_vllm() -> Any:
    """The vllm module, or a :class:`BackendError` saying how to install it."""
    try:
        import vllm
    except ImportError as error:
        raise BackendError(
            f"the vllm backend needs the vllm package, which is not installed here: "
            f"{VLLM_INSTALL_HINT} (on a CUDA machine), or use the hf backend ({error})"
        ) from error
    return vllm


def sampling_settings(decoding: DecodingSettings, stops: StopTokens) -> dict[str, Any]:
    """``SamplingParams`` arguments that decode as ``decoding`` says, and nothing else."""
    return {
        "n": 1,
        "max_tokens": decoding.max_new_tokens,
        "temperature": decoding.temperature if decoding.do_sample else 0.0,
        "top_p": decoding.top_p if decoding.do_sample else 1.0,
        "top_k": -1,
        "repetition_penalty": 1.0,
        "seed": decoding.seed,
        "stop_token_ids": sorted(stops.end),
        "skip_special_tokens": False,
    }


def video_item(request: Request) -> tuple[np.ndarray, dict[str, Any]]:
    """The frames of a video request, unchanged, with what they are: all the frames of a clip
    at ``request.fps`` (so nothing is left to sample)."""
    assert request.frames is not None and request.fps is not None
    metadata = {
        **video_metadata(request),
        "duration": len(request.frames) / float(request.fps),
        "do_sample_frames": False,
    }
    return request.frames, metadata


def vllm_prompt(processor: Any, request: Request) -> dict[str, Any]:
    """The vLLM prompt of one request: text, media and per-request processor arguments."""
    check_media(request)
    prompt: dict[str, Any] = {"prompt": prompt_text(processor, request)}
    media: dict[str, Any] = {}
    if request.image is not None:
        media["image"] = request.image
    if request.frames is not None:
        media["video"] = [video_item(request)]
        prompt["mm_processor_kwargs"] = {"fps": video_fps(request), "do_sample_frames": False}
    if media:
        prompt["multi_modal_data"] = media
    return prompt


def generation_config_of(model_path: str) -> Any:
    """The checkpoint's generation config (stop ids), or None when it has none."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model_path)
    except OSError:
        return None


class VLLMBackend:
    """Generation with vLLM's offline engine (see the module docs)."""

    name = "vllm"
    needs_media = True
    frame_size: ProcessorFrameSize | None = None  # frames go at their decoded size

    def __init__(
        self,
        model_path: Path | str,
        *,
        decoding: DecodingSettings,
        tensor_parallel_size: int = 1,
        max_pixels: int | None = None,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        dtype: str = "auto",
    ) -> None:
        self._vllm = import_vllm()
        from transformers import AutoProcessor

        if tensor_parallel_size < 1:
            raise BackendError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
        self.model_path = str(model_path)
        self._decoding = decoding
        self.tensor_parallel_size = tensor_parallel_size
        self.dtype = dtype
        try:
            self.processor = AutoProcessor.from_pretrained(self.model_path)
        except (OSError, ValueError, ImportError) as error:
            message = f"could not load the processor of {self.model_path!r}: {error}"
            raise BackendError(message) from error
        if getattr(self.processor, "chat_template", None) is None:
            raise BackendError(f"{self.model_path}: the processor has no chat template")
        self.max_pixels = applicable_max_pixels(self.processor, max_pixels, self.model_path)
        self.stop_tokens = stop_tokens(
            generation_config_of(self.model_path), self.processor.tokenizer
        )
        self.sampling_params = self._vllm.SamplingParams(
            **sampling_settings(decoding, self.stop_tokens)
        )
        self.engine_settings = self._engine_settings(gpu_memory_utilization, max_model_len)
        self.llm = self._vllm.LLM(model=self.model_path, **self.engine_settings)

    def _engine_settings(
        self, gpu_memory_utilization: float, max_model_len: int | None
    ) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "tensor_parallel_size": self.tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "dtype": self.dtype,
            "seed": self._decoding.seed,
            "limit_mm_per_prompt": dict(MEDIA_PER_PROMPT),
        }
        if max_model_len is not None:
            settings["max_model_len"] = max_model_len
        if self.max_pixels is not None:
            settings["mm_processor_kwargs"] = {"max_pixels": self.max_pixels}
        return settings

    def decoding(self) -> DecodingSettings:
        return self._decoding

    def generate(self, requests: Sequence[Request]) -> list[str]:
        if not requests:
            return []
        prompts = [vllm_prompt(self.processor, request) for request in requests]
        results = self.llm.generate(prompts, self.sampling_params, use_tqdm=False)
        tokenizer = self.processor.tokenizer
        return [
            decode_output(tokenizer, result.outputs[0].token_ids, self.stop_tokens)
            for result in results
        ]

    @cached_property
    def _checkpoint_hashes(self) -> dict[str, str]:
        return checkpoint_hashes(self.model_path)

    def fingerprint(self) -> dict[str, Any]:
        import transformers

        config = transformers.AutoConfig.from_pretrained(self.model_path)
        return {
            "backend": self.name,
            "path": self.model_path,
            "model_class": (getattr(config, "architectures", None) or [None])[0],
            **self._checkpoint_hashes,
            "dtype": self.dtype,
            "tensor_parallel_size": self.tensor_parallel_size,
            "max_pixels": self.max_pixels,
            "vllm_version": getattr(self._vllm, "__version__", None),
            "transformers_version": transformers.__version__,
        }

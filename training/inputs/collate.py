"""From dataset rows to model inputs: decode media, render the chat, run the processor.

The same pieces as evaluation: :class:`p2r_eval.media.requests.RequestBuilder` decodes the media and
builds the p2r prompt of an item, :func:`p2r_eval.models.hf.chat_messages` lays out the user
turn and :func:`p2r_eval.models.hf.video_metadata` tells the video processor the real frame
rate. So a model is trained on exactly the inputs it is evaluated on.

- :class:`SFTCollator`: prompt + target in the chat template, several videos a batch, labels
  ``-100`` on the prompt (everything up to the assistant header, found on token ids) and on
  padding.
- :class:`RolloutCollator`: for GRPO; encodes each distinct prompt of a generation batch once
  (its token ids and a :class:`VisualInput`), shared by that prompt's rows. It runs in the
  dataloader, so decoding overlaps training when ``dataloader_num_workers > 0``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from p2r_eval.core.items import Item, item_from_row
from p2r_eval.core.request import Request
from p2r_eval.media.requests import MediaError, RequestBuilder
from p2r_eval.media.video import FramePolicy
from p2r_eval.models.hf import (
    chat_messages,
    check_media,
    limit_pixels,
    prompt_text,
    video_metadata,
)

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
# Video-R1 trains on 16 frames of at most 128*28*28 pixels.
DEFAULT_TRAIN_POLICY = FramePolicy(num_frames=16, max_pixels=128 * 28 * 28)


class TrainingMediaError(RuntimeError):
    """No usable media in a batch, or a rollout item whose media cannot be read."""


def training_processor(processor: Any, policy: FramePolicy) -> Any:
    """A copy of ``processor`` capped at the policy's pixels per frame (the original, saved
    with checkpoints, keeps the checkpoint's own settings)."""
    limited = copy.deepcopy(processor)
    limit_pixels(limited, policy.max_pixels)
    return limited


def conversation_text(processor: Any, request: Request, target: str) -> str:
    """The chat with ``target`` as the assistant's reply, end-of-turn included."""
    messages = chat_messages(request) + [{"role": "assistant", "content": target}]
    return processor.apply_chat_template(messages, tokenize=False)


def assistant_header_ids(processor: Any) -> list[int]:
    """Token ids of what the chat template adds for ``add_generation_prompt`` (Qwen:
    ``<|im_start|>assistant\\n``): the reply starts right after their last occurrence."""
    messages = [{"role": "user", "content": [{"type": "text", "text": "x"}]}]
    with_header, without = (
        processor.apply_chat_template(messages, add_generation_prompt=flag, tokenize=False)
        for flag in (True, False)
    )
    if not with_header.startswith(without) or with_header == without:
        raise ValueError("the chat template's generation prompt is not a suffix of the chat")
    return processor.tokenizer(with_header[len(without):], add_special_tokens=False)["input_ids"]


def reply_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor, header: Sequence[int]
                 ) -> torch.Tensor:
    """Labels that keep only the reply: every token up to the end of the last assistant
    header, and padding, set to ``-100``. Raises when a row has no header (truncated)."""
    width = len(header)
    windows = input_ids.unfold(1, width, 1)  # (B, L - width + 1, width)
    found = (windows == torch.tensor(header, dtype=input_ids.dtype)).all(-1)
    if not found.any(-1).all():
        missing = (~found.any(-1)).nonzero().flatten().tolist()
        raise ValueError(f"rows {missing} hold no assistant header: was the text truncated?")
    positions = torch.arange(found.shape[1]).expand_as(found)
    reply_start = torch.where(found, positions, -1).amax(-1) + width
    labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
    before_reply = torch.arange(input_ids.shape[1]) < reply_start[:, None]
    return labels.masked_fill(before_reply, IGNORE_INDEX)


def processor_inputs(processor: Any, requests: Sequence[Request], texts: Sequence[str],
                     *, padding_side: str) -> Any:
    """The processor's batch for ``texts`` with the requests' images and videos (frames
    already sampled: the processor is told their rate and not to sample again)."""
    for request in requests:
        check_media(request)
    media: dict[str, Any] = {}
    images = [r.image for r in requests if r.image is not None]
    videos = [r for r in requests if r.frames is not None]
    if images:
        media["images"] = images
    if videos:
        media["videos"] = [r.frames for r in videos]
        media["video_metadata"] = [video_metadata(r) for r in videos]
        media["do_sample_frames"] = False
    return processor(
        text=list(texts), padding=True, padding_side=padding_side, return_tensors="pt", **media
    )


class SFTCollator:
    """Rows with item columns and ``target`` -> a padded batch with prompt-masked labels.

    A row whose media cannot be read is left out of its batch with a warning (``skipped``
    counts them); a batch with no readable row raises :class:`TrainingMediaError`.
    """

    def __init__(self, processor: Any, builder: RequestBuilder) -> None:
        self.processor = processor
        self.builder = builder
        self.header = assistant_header_ids(processor)
        self.skipped = 0

    def _readable(self, rows: Sequence[dict[str, Any]]) -> list[tuple[Request, str]]:
        kept = []
        for row in rows:
            try:
                kept.append((self.builder(item_from_row(row)), row["target"]))
            except MediaError as error:
                self.skipped += 1
                logger.warning("SFT: skipping %s", error)
        return kept

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        kept = self._readable(rows)
        if not kept:
            names = ", ".join(f"{row['task']}/{row['id']}" for row in rows)
            raise TrainingMediaError(f"no readable media in the batch ({names})")
        requests = [request for request, _ in kept]
        texts = [conversation_text(self.processor, r, target) for r, target in kept]
        batch = dict(processor_inputs(self.processor, requests, texts, padding_side="right"))
        batch["labels"] = reply_labels(batch["input_ids"], batch["attention_mask"], self.header)
        return batch


@dataclass
class VisualInput:
    """One image or video of a prompt, processed: what the vision encoder needs.

    ``grid_thw`` is (1, 3); ``second_per_grid_t`` is set for videos. The rows of one prompt
    share the same object, so the encoder runs once per prompt (see
    :func:`p2r_train.inputs.vision.visual_forward_kwargs`); ``features`` holds the encoder's output
    when the vision tower is frozen, computed once per rollout.
    """

    key: str
    kind: str  # "video" or "image"
    pixel_values: torch.Tensor
    grid_thw: torch.Tensor
    second_per_grid_t: float | None = None
    features: torch.Tensor | None = None

    def move_to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> VisualInput:
        self.pixel_values = self.pixel_values.to(device, dtype=dtype)
        self.grid_thw = self.grid_thw.to(device)
        return self


@dataclass
class PromptEncoding:
    """A prompt's token ids (vision placeholders expanded) and its visual input; ``request``
    (the decoded frames and the prompt) is kept for rollout engines that process the media
    themselves (vLLM)."""

    prompt_ids: list[int]
    visual: VisualInput
    request: Request | None = None


def _split_visuals(batch: Any, requests: Sequence[Request], keys: Sequence[str]
                   ) -> list[VisualInput]:
    """Cut the processor's concatenated pixel rows back into one VisualInput per request."""
    visuals: list[VisualInput] = []
    video_rows = image_rows = 0
    video_index = image_index = 0
    for request, key in zip(requests, keys, strict=True):
        if request.frames is not None:
            grid = batch["video_grid_thw"][video_index : video_index + 1]
            count = int(grid.prod())
            pixels = batch["pixel_values_videos"][video_rows : video_rows + count]
            seconds = float(batch["second_per_grid_ts"][video_index])
            visuals.append(VisualInput(key, "video", pixels, grid, seconds))
            video_rows, video_index = video_rows + count, video_index + 1
        else:
            grid = batch["image_grid_thw"][image_index : image_index + 1]
            count = int(grid.prod())
            pixels = batch["pixel_values"][image_rows : image_rows + count]
            visuals.append(VisualInput(key, "image", pixels, grid))
            image_rows, image_index = image_rows + count, image_index + 1
    return visuals


def item_key(item: Item) -> str:
    return f"{item.task}/{item.id}"


class RolloutCollator:
    """GRPO generation batch -> the same rows, each with a ``rollout`` :class:`PromptEncoding`.

    Rows of the same item (GRPO repeats each prompt ``num_generations`` times) share one
    encoding: media decoded and processed once per distinct item. Unreadable media raise
    :class:`TrainingMediaError` naming the item (a group cannot lose a member).
    ``keep_requests`` keeps each encoding's decoded request (frames at their sampled size).
    """

    def __init__(self, processor: Any, builder: RequestBuilder, *,
                 keep_requests: bool = False) -> None:
        self.processor = processor
        self.builder = builder
        self.keep_requests = keep_requests

    def _request(self, item: Item) -> Request:
        try:
            return self.builder(item)
        except MediaError as error:
            raise TrainingMediaError(str(error)) from error

    def __call__(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        items = [item_from_row(row) for row in rows]
        distinct: dict[str, Item] = {}
        for item in items:
            distinct.setdefault(item_key(item), item)
        keys = list(distinct)
        requests = [self._request(distinct[key]) for key in keys]
        texts = [prompt_text(self.processor, request) for request in requests]
        batch = processor_inputs(self.processor, requests, texts, padding_side="left")
        visuals = _split_visuals(batch, requests, keys)
        encodings = {}
        for index, (key, visual) in enumerate(zip(keys, visuals, strict=True)):
            ids = batch["input_ids"][index][batch["attention_mask"][index].bool()].tolist()
            request = requests[index] if self.keep_requests else None
            encodings[key] = PromptEncoding(ids, visual, request)
        return [{**row, "rollout": encodings[item_key(item)]} for row, item in zip(rows, items,
                                                                                   strict=True)]

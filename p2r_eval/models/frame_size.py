"""Video frames resized where they are decoded, to the size the model's processor gives them.

Under the uniform input policy the model's video processor resizes each video's frames. Where
that processor is transformers' Qwen2-VL video processor (Qwen2-VL and Qwen2.5-VL use it), p2r
knows its size rule (:class:`p2r_eval.media.video.ProcessorFrameSize`) and its resize (bicubic
with antialias on the uint8 values, :func:`p2r_eval.media.video.resize_frames_as_processor`),
so for a high-resolution video the decoding thread resizes each frame right after decoding
instead: only resized frames are kept (32 frames of an 8K video are 3 GB at full size), they
leave a decode worker at their smaller size, and the run's main thread does not resize. The
processor, finding frames at its own size, leaves them as they are (torchvision returns an
image of the asked size unchanged): the model's inputs are the same bytes. Smaller videos
(decoded frames of :data:`p2r_eval.media.video.RESIZE_WHERE_DECODED_FROM_BYTES` or less) are
left to the processor: resizing them there saves no work, and a decode worker would import
torch for it.

Two checks keep that true whatever transformers is installed:

- when a backend loads, :func:`decoding_frame_size` has the processor prepare a test video
  twice, at its decoded size and resized by p2r, growing and shrinking it; unless both give
  the same bytes, frames are left to the processor;
- for every item, :func:`check_presized` has the processor prepare a video of the decoded
  shape and one of the resized shape without data (device ``meta``: the whole call in about
  1.5 ms) and stops the item unless both come out at the frames' size.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from p2r_eval.core.request import Request
from p2r_eval.media.video import ProcessorFrameSize, resize_frames_as_processor
from p2r_eval.models.base import BackendError
from p2r_eval.models.video_fast_path import FAST_VIDEO_PROCESSORS

log = logging.getLogger(__name__)

BICUBIC = 3
"""PIL's (and transformers') number for bicubic resampling."""
PIXELS_PER_TOKEN_OF_BUDGET = 0.9
"""transformers' Qwen2-VL video pixel budget: 90% of ``max_video_tokens`` tokens' pixels."""
CHECK_VIDEO_FRAMES = 2


def decoding_frame_size(processor: Any) -> ProcessorFrameSize | None:
    """The size ``processor``'s video processor resizes frames to, where p2r can resize them
    to it after decoding with the same bytes; None otherwise (another processor class, one
    that does not resize or not bicubically, or one that fails the check with a test video)."""
    video_processor = getattr(processor, "video_processor", None)
    size = None if video_processor is None else size_rule_of(video_processor)
    if size is None:
        return None
    failure = presize_check_failure(video_processor, size)
    if failure is not None:
        log.warning("%s: video frames are left to the processor to resize (%s)",
                    type(video_processor).__name__, failure)
        return None
    return size


def size_rule_of(video_processor: Any) -> ProcessorFrameSize | None:
    """The settings of a Qwen2-VL video processor that decide its frame size; None for another
    video processor, or one that does not resize bicubically."""
    if type(video_processor).__name__ not in FAST_VIDEO_PROCESSORS:
        return None
    if not video_processor.do_resize or video_processor.resample != BICUBIC:
        return None
    factor = int(video_processor.patch_size * video_processor.merge_size)
    budget = None
    if video_processor.cap_pixels_per_frame:
        budget = int(video_processor.max_video_tokens * factor * factor
                     * PIXELS_PER_TOKEN_OF_BUDGET)
    return ProcessorFrameSize(factor=factor, min_pixels=int(video_processor.size.shortest_edge),
                              max_pixels=int(video_processor.size.longest_edge),
                              video_pixel_budget=budget,
                              temporal_factor=int(video_processor.temporal_patch_size))


def processor_video_size(
    video_processor: Any, frame_count: int, height: int, width: int
) -> tuple[int, int]:
    """(height, width) the processor gives ``frame_count`` frames of ``height`` x ``width``,
    found without pixels: it prepares a video on the ``meta`` device (a shape, no data), and
    its patch grid says the size. Its whole call runs, so whatever decides its size counts."""
    video = torch.empty((frame_count, 3, height, width), dtype=torch.uint8, device="meta")
    outputs = video_processor(videos=[video], do_sample_frames=False, return_tensors="pt")
    _, grid_height, grid_width = outputs["video_grid_thw"][0].tolist()
    return grid_height * video_processor.patch_size, grid_width * video_processor.patch_size


def presize_check_failure(video_processor: Any, size: ProcessorFrameSize) -> str | None:
    """Why frames resized by p2r would not give the processor's inputs (None: they do): a
    test video smaller than the processor's minimum (grown) and one larger than its maximum
    (shrunk), each prepared at its decoded size and resized by p2r."""
    rng = np.random.default_rng(0)
    for height, width in check_video_sizes(size):
        frames = rng.integers(0, 256, (CHECK_VIDEO_FRAMES, height, width, 3), dtype=np.uint8)
        try:
            own = processor_video_size(video_processor, CHECK_VIDEO_FRAMES, height, width)
            if own != size.size(height, width, CHECK_VIDEO_FRAMES):
                return f"its size for {width}x{height} frames differs from p2r's"
            target = size.presize(height, width, CHECK_VIDEO_FRAMES)
            if target is None:  # left to the processor
                continue
            decoded = prepared_pixels(video_processor, frames)
            presized = prepared_pixels(video_processor, resize_frames_as_processor(frames, target))
        except (TypeError, ValueError, RuntimeError) as error:
            return f"{type(error).__name__}: {error}"
        if not torch.equal(decoded, presized):
            return f"{width}x{height} frames resized by p2r give other pixel values"
    return None


def check_video_sizes(size: ProcessorFrameSize) -> list[tuple[int, int]]:
    """A frame size below the processor's minimum and one above its maximum, neither a
    multiple of its factor, with different aspect ratios."""
    small = max(int((size.min_pixels / 2) ** 0.5), 3)
    large = int((size.max_pixels * 2) ** 0.5)
    return [(small - 1, small * 3 // 2 + 1), (large * 4 // 3 + 1, large - 1)]


def prepared_pixels(video_processor: Any, frames: np.ndarray) -> torch.Tensor:
    """The processor's ``pixel_values_videos`` for one video of ``frames`` (T, H, W, 3)."""
    outputs = video_processor(videos=[frames], do_sample_frames=False, return_tensors="pt")
    return outputs["pixel_values_videos"]


def check_presized(processor: Any, request: Request) -> None:
    """Stop ``request`` (BackendError naming its item) unless its frames, resized after
    decoding, are at the size ``processor`` gives frames of their decoded size, and at one it
    leaves as it is."""
    if request.presized_from is None or request.frames is None:
        return
    video_processor = getattr(processor, "video_processor", None)
    if video_processor is None or size_rule_of(video_processor) is None:
        raise BackendError(f"{request.task}/{request.item_id}: frames were resized after "
                           f"decoding for a video processor p2r knows, and "
                           f"{type(processor).__name__} has none")
    height, width = request.presized_from
    frame_count, *size = request.frames.shape[:3]
    expected = processor_video_size(video_processor, frame_count, height, width)
    again = processor_video_size(video_processor, frame_count, *size)
    if tuple(size) != expected or again != expected:
        raise BackendError(
            f"{request.task}/{request.item_id}: frames were resized after decoding from "
            f"{width}x{height} to {size[1]}x{size[0]}, but the processor resizes them to "
            f"{expected[1]}x{expected[0]}: p2r's copy of the processor's size rule is wrong "
            "for this size (a bug to report); the item is not generated"
        )

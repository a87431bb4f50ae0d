"""Turning an item into a generation request: decode its media (through the frame cache when
one is configured), in worker processes ahead of the model when asked.

:func:`prefetch_requests` keeps at most ``depth`` items decoding at once, so memory stays
bounded however long the videos are, while the model works on the current batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from p2r_eval.frame_cache import FrameCache
from p2r_eval.items import Item
from p2r_eval.models.base import Request
from p2r_eval.prompts import build_prompt
from p2r_eval.video import FramePolicy, SampledFrames, VideoError, load_frame_folder, sample_frames

DEFAULT_DECODE_TIMEOUT_S = 600.0
"""The time budget for decoding one video (a stalled or pathological file fails its item)."""


class MediaError(RuntimeError):
    """An item's media could not be used (the message names the item and the file)."""


@dataclass(frozen=True)
class RequestBuilder:
    """Everything needed to build an item's request; picklable, so it runs in workers."""

    prompt_style: str
    policy: FramePolicy
    needs_media: bool = True
    frame_cache: Path | None = None
    decode_timeout_s: float = DEFAULT_DECODE_TIMEOUT_S

    def __call__(self, item: Item) -> Request:
        prompt = build_prompt(item, self.prompt_style)
        if not self.needs_media or item.media_type == "none":
            return Request(task=item.task, item_id=item.id, prompt=prompt)
        _check_media_named(item)
        try:
            if item.media_type == "image":
                return Request(item.task, item.id, prompt, image=load_image(item.media))
            sampled = self.sample(item)
        except (VideoError, OSError) as error:
            raise MediaError(f"{item.task}/{item.id}: {error}") from error
        return Request(item.task, item.id, prompt, frames=sampled.frames, fps=sampled.sample_fps)

    def sample(self, item: Item) -> SampledFrames:
        return sample_media(item.media, item.media_type, self.policy, self.frame_cache,
                            self.decode_timeout_s)


def sample_media(
    path: Path,
    media_type: str,
    policy: FramePolicy,
    frame_cache: Path | None = None,
    timeout_s: float = DEFAULT_DECODE_TIMEOUT_S,
) -> SampledFrames:
    """The frames ``policy`` takes from a video file (``media_type`` "video") or a frame folder
    ("frames"), through the frame cache when one is given: the one way every caller (p2r-eval,
    the lmms-eval interop) turns a media path into model frames. Decoding a video longer
    than ``timeout_s`` raises :class:`p2r_eval.video.VideoTimeoutError`."""
    if media_type == "frames":
        return load_frame_folder(path, policy)
    sampler = partial(_sample_video, timeout_s=timeout_s)
    if frame_cache is None:
        return sampler(path, policy)
    return FrameCache(frame_cache).get_or_sample(path, policy, sampler)


def _sample_video(path: Path, policy: FramePolicy, *, timeout_s: float) -> SampledFrames:
    return sample_frames(path, policy=policy, timeout_s=timeout_s)


def _check_media_named(item: Item) -> None:
    media_error = item.meta.get("media_error")
    if media_error:
        raise MediaError(f"{item.task}/{item.id}: {media_error}")
    if item.media is None:
        raise MediaError(f"{item.task}/{item.id}: the record names no media file")


def load_image(path: Path) -> np.ndarray:
    """The image as RGB. Only a regular file is opened (reading a named pipe would block
    forever), and an image over PIL's decompression-bomb limit is refused; both as OSError."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        reason = "not a regular file" if path.exists() else "image file not found"
        raise OSError(f"{path}: {reason}")
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except Image.DecompressionBombError as error:
        raise OSError(f"{path}: {error}") from None


def _build_or_error(builder: RequestBuilder, item: Item) -> Request | MediaError:
    try:
        return builder(item)
    except MediaError as error:
        return error


def prefetch_requests(
    items: Iterable[Item], builder: RequestBuilder, workers: int = 0, depth: int | None = None
) -> Iterator[tuple[Item, Request | MediaError]]:
    """Yield ``(item, request or error)`` in item order.

    With ``workers > 0``, requests are built in that many worker processes, at most ``depth``
    (default ``2 * workers``) ahead of the consumer; with 0, inline.
    """
    if workers <= 0:
        for item in items:
            yield item, _build_or_error(builder, item)
        return
    depth = depth or 2 * workers
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        yield from _bounded_map(pool, builder, items, depth)


def _bounded_map(
    pool: Executor, builder: RequestBuilder, items: Iterable[Item], depth: int
) -> Iterator[tuple[Item, Request | MediaError]]:
    in_flight: deque[tuple[Item, Future]] = deque()
    for item in items:
        in_flight.append((item, pool.submit(_build_or_error, builder, item)))
        if len(in_flight) >= depth:
            done_item, future = in_flight.popleft()
            yield done_item, future.result()
    while in_flight:
        done_item, future = in_flight.popleft()
        yield done_item, future.result()

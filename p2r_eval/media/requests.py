"""Turning an item into a generation request: decode its media (through the frame cache when
one is configured), in worker processes ahead of the model when asked.

:func:`prefetch_requests` keeps at most ``depth`` items decoding at once, so memory stays
bounded however long the videos are, while the model works on the current batch. A
:class:`DecodePool` keeps those workers for a whole run and can start them, and the first
items' decoding, before the model is loaded.
"""

from __future__ import annotations

import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from p2r_eval.core.items import Item
from p2r_eval.core.prompts import build_prompt
from p2r_eval.media.frame_cache import FrameCache
from p2r_eval.media.video import (
    FramePolicy,
    SampledFrames,
    VideoError,
    load_frame_folder,
    sample_frames,
)
from p2r_eval.models.base import Request

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
        media = _named_media(item)
        try:
            if item.media_type == "image":
                return Request(item.task, item.id, prompt, image=load_image(media))
            sampled = self.sample(media, item.media_type, item.frame_folder_fps)
        except (VideoError, OSError) as error:
            raise MediaError(f"{item.task}/{item.id}: {error}") from error
        return Request(item.task, item.id, prompt, frames=sampled.frames, fps=sampled.sample_fps)

    def sample(self, media: Path, media_type: str,
               frame_folder_fps: float | None = None) -> SampledFrames:
        return sample_media(media, media_type, self.policy, self.frame_cache,
                            self.decode_timeout_s, frame_folder_fps=frame_folder_fps)


def sample_media(
    path: Path,
    media_type: str,
    policy: FramePolicy,
    frame_cache: Path | None = None,
    timeout_s: float = DEFAULT_DECODE_TIMEOUT_S,
    *,
    frame_folder_fps: float | None = None,
) -> SampledFrames:
    """The frames ``policy`` takes from a video file (``media_type`` "video") or a frame folder
    ("frames", whose frames were taken at ``frame_folder_fps``), through the frame cache when
    one is given: the one way every caller (p2r-eval, the lmms-eval interop, the viewer,
    training) turns a media path into model frames. Decoding a video longer than
    ``timeout_s`` raises :class:`p2r_eval.media.video.VideoTimeoutError`; a frame folder
    without a rate raises :class:`p2r_eval.media.video.VideoError`.

    Only video files go through the frame cache (it keys a video by its file's bytes), so
    no cached entry depends on a frame folder's rate."""
    if media_type == "frames":
        if frame_folder_fps is None:
            raise VideoError(path, "a frame folder needs the rate its frames were taken at, and "
                                   "its task's YAML gives none (frame_folder_fps in the source)")
        return load_frame_folder(path, policy, source_fps=frame_folder_fps)
    sampler = partial(_sample_video, timeout_s=timeout_s)
    if frame_cache is None:
        return sampler(path, policy)
    return FrameCache(frame_cache).get_or_sample(path, policy, sampler)


def _sample_video(path: Path, policy: FramePolicy, *, timeout_s: float) -> SampledFrames:
    return sample_frames(path, policy=policy, timeout_s=timeout_s)


def _named_media(item: Item) -> Path:
    """The item's media file; MediaError when its record names none or a broken one."""
    media_error = item.meta.get("media_error")
    if media_error:
        raise MediaError(f"{item.task}/{item.id}: {media_error}")
    if item.media is None:
        raise MediaError(f"{item.task}/{item.id}: the record names no media file")
    return item.media


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


def ignore_interrupts() -> None:
    """A decode worker leaves Ctrl-C to the run: a terminal sends SIGINT to the whole process
    group, and the run stops its workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class DecodePool:
    """Decode worker processes shared by every task of a run: they start once, not per task.

    Made before the model loads, and given the run's first items with :meth:`start_early`,
    the workers' start-up and those items' decoding run on another core while the model
    loads; :func:`prefetch_requests` then takes their results instead of decoding again.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"a decode pool needs at least one worker, got {workers}")
        self.workers = workers
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                             initializer=ignore_interrupts)
        self._early: dict[tuple[RequestBuilder, str, str], Future] = {}

    def start_early(self, items: Iterable[Item], builder: RequestBuilder) -> None:
        """Start building these items' requests now (the pool's caller bounds how many)."""
        for item in items:
            key = (builder, item.task, item.id)
            if key not in self._early:
                self._early[key] = self._executor.submit(_build_or_error, builder, item)

    def submit(self, builder: RequestBuilder, item: Item) -> Future:
        """The request of ``item``: the one started early if there is one, else a new one."""
        early = self._early.pop((builder, item.task, item.id), None)
        if early is not None:
            return early
        return self._executor.submit(_build_or_error, builder, item)

    def close(self) -> None:
        """Stop the workers; requests started early and never asked for are dropped."""
        for future in self._early.values():
            future.cancel()
        self._early.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def prefetch_requests(
    items: Iterable[Item],
    builder: RequestBuilder,
    workers: int = 0,
    depth: int | None = None,
    pool: DecodePool | None = None,
) -> Iterator[tuple[Item, Request | MediaError]]:
    """Yield ``(item, request or error)`` in item order.

    With ``workers > 0``, requests are built in that many worker processes (those of ``pool``
    when one is given, else a pool made for this call), at most ``depth`` (default
    ``2 * workers``) ahead of the consumer; with 0 and no ``pool``, inline.
    """
    if pool is not None:
        yield from _bounded_map(partial(pool.submit, builder), items, depth or 2 * pool.workers)
        return
    if workers <= 0:
        for item in items:
            yield item, _build_or_error(builder, item)
        return
    with DecodePool(workers) as own_pool:
        yield from _bounded_map(partial(own_pool.submit, builder), items, depth or 2 * workers)


def _bounded_map(
    submit: Callable[[Item], Future], items: Iterable[Item], depth: int
) -> Iterator[tuple[Item, Request | MediaError]]:
    in_flight: deque[tuple[Item, Future]] = deque()
    for item in items:
        in_flight.append((item, submit(item)))
        if len(in_flight) >= depth:
            done_item, future = in_flight.popleft()
            yield done_item, future.result()
    while in_flight:
        done_item, future = in_flight.popleft()
        yield done_item, future.result()

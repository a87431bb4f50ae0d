"""Turning an item into a generation request: decode its media (through the frame cache when
one is configured), in worker processes ahead of the model when asked.

:func:`prefetch_requests` keeps at most ``depth`` videos decoding at once while the model works
on the current batch, and lets decoded frames wait up to :data:`READY_FRAMES_BYTES`, so memory
stays bounded however long the videos are; consecutive items on one video share its frames.
A :class:`DecodePool` keeps those workers, at a lower CPU priority than the run, for a whole
run and can start them, and the first items' decoding, before the model is loaded. A worker
hands its frames over in a file of the pool's shared-memory folder, which the run maps
instead of receiving a pickled copy through the pool's pipe.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import shutil
import signal
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from p2r_eval.core.items import Item
from p2r_eval.core.prompts import build_prompt
from p2r_eval.core.request import Request
from p2r_eval.media.frame_cache import FrameCache
from p2r_eval.media.video import (
    RESIZE_WHERE_DECODED_FROM_BYTES,
    FramePolicy,
    SampledFrames,
    VideoError,
    decoded_frames_bytes,
    load_frame_folder,
    sample_frames,
)

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
        presized = (self.policy.processor_size is not None
                    and sampled.frames.shape[1:3] != sampled.decoded_size)
        return Request(item.task, item.id, prompt, frames=sampled.frames, fps=sampled.sample_fps,
                       presized_from=sampled.decoded_size if presized else None)

    def sharing(self, item: Item, leader: Request) -> Request:
        """``item``'s request with the frames of ``leader``, the request of an item on the
        same video (see :func:`shared_media_key`)."""
        return Request(item.task, item.id, build_prompt(item, self.prompt_style),
                       frames=leader.frames, fps=leader.fps, presized_from=leader.presized_from)

    def at_decoded_size(self) -> RequestBuilder:
        """This builder without the resize to the processor's size after decoding: its
        requests hold frames at their decoded size, which the processor resizes itself to the
        same inputs (what the decode workers build before the model, and so its processor,
        is loaded)."""
        return dataclasses.replace(self, policy=self.policy.resized_where_decoded(None))

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


MediaKey = tuple[Path, str, float | None]
"""What an item's frames depend on besides its :class:`RequestBuilder`."""


def video_key(item: Item) -> MediaKey | None:
    """The video file or frame folder an item's frames come from; None for an item with no
    video to decode (text, an image, a broken record)."""
    if (item.media_type not in ("video", "frames") or item.media is None
            or item.meta.get("media_error")):
        return None
    return (item.media, item.media_type, item.frame_folder_fps)


def shared_media_key(builder: RequestBuilder, item: Item) -> MediaKey | None:
    """Items with the same key get the same frames: consecutive ones (a benchmark's questions
    on one video, in a row after :func:`grouped_by_video`) are decoded once. None for items
    without a video or frame folder to decode, or a builder that takes no media."""
    return video_key(item) if builder.needs_media else None


def grouped_by_video(items: Sequence[Item]) -> list[Item]:
    """``items`` in the order a run generates them and lists them in its samples: each item on
    a video moved up to just after the items before it on that video, everything else in its
    place. Every question on one video then comes in a row, and the video is decoded once
    (:func:`prefetch_requests`) however the benchmark orders its questions: VSI-Bench asks its
    288 videos 5,130 questions in 1,613 runs, VideoMMMU its 300 videos 900 questions, none in
    a row. The order depends on ``items`` alone, so a run resumed from any of its points goes
    on in the same order, and merged shards list their samples as one process would."""
    return [item for group in video_groups(items) for item in group]


def video_groups(items: Sequence[Item]) -> list[list[Item]]:
    """``items`` in :func:`grouped_by_video` order, cut into the items on each video (an item
    without a video is a group of its own), groups in the order of their first item."""
    groups: dict[MediaKey | int, list[Item]] = {}
    for position, item in enumerate(items):
        key = video_key(item)
        groups.setdefault(position if key is None else key, []).append(item)
    return list(groups.values())


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


SHARED_MEMORY = Path("/dev/shm")
"""Where decode workers leave frames for the run (a RAM file system), when the system has it."""


@dataclass(frozen=True)
class SharedFrames:
    """A request whose frames a decode worker left in the file ``path`` (raw bytes of an array
    of ``shape`` and ``dtype``) instead of sending them through the pool's pipe: about 0.1 s
    of CPU less per 32-frame 854x480 item in the run's process (a pickled 39 MB array is
    copied into the pipe, out of it and out of the pickle)."""

    request: Request
    path: Path
    shape: tuple[int, ...]
    dtype: str

    def mapped(self) -> Request:
        """The request with its frames mapped from the file (not copied); the file's name is
        removed at once, its memory freed with the frames."""
        with self.path.open("r+b") as file:
            memory = mmap.mmap(file.fileno(), 0)
        self.path.unlink()
        frames = np.frombuffer(memory, dtype=self.dtype).reshape(self.shape)
        return dataclasses.replace(self.request, frames=frames)


def _shared(request: Request, folder: Path) -> Request | SharedFrames:
    """``request`` with its frames written to a new file in ``folder``; the request as it is
    where the folder has no room (its frames then go through the pipe)."""
    assert request.frames is not None
    frames = np.ascontiguousarray(request.frames)
    path = folder / f"{uuid.uuid4().hex}.frames"
    try:
        with path.open("xb") as file:
            os.posix_fallocate(file.fileno(), 0, frames.nbytes)  # a full folder fails here
            file.write(frames.data.cast("B"))
    except OSError:
        path.unlink(missing_ok=True)
        return request
    return SharedFrames(dataclasses.replace(request, frames=None), path, frames.shape,
                        frames.dtype.str)


WorkerAnswer = Request | SharedFrames | MediaError

READY_FRAMES_BYTES = 1 << 30
"""How many bytes of decoded frames may wait for the model, beyond the videos still decoding:
those decoded while it loads (early decoding) and those decoded ahead during the run."""

READY_REQUESTS = 256
"""How many built requests may wait for the model (the bound for items without frames)."""


def answer_bytes(answer: WorkerAnswer) -> int:
    """The bytes of frames a worker's answer holds."""
    if isinstance(answer, SharedFrames):
        return int(np.prod(answer.shape)) * np.dtype(answer.dtype).itemsize
    if isinstance(answer, Request) and answer.frames is not None:
        return int(answer.frames.nbytes)
    return 0


def too_large_to_decode_early(builder: RequestBuilder, item: Item) -> bool:
    """Whether ``item``'s video is left out of the decoding started before the model loads:
    a video whose frames ``builder`` would hand to the processor at their decoded size, and
    whose header says they take more than :data:`RESIZE_WHERE_DECODED_FROM_BYTES`. Its frames
    would be held at full size (the processor's size is not known yet); decoded when the run
    asks for it, they are resized where they are decoded."""
    if (builder.policy.resize != "processor" or not builder.needs_media
            or item.media_type != "video" or item.media is None):
        return False
    held = decoded_frames_bytes(item.media, builder.policy)
    return held is not None and held > RESIZE_WHERE_DECODED_FROM_BYTES


def _finished_answer(future: Future) -> WorkerAnswer | None:
    """A worker's answer once it is there; None while it is being built, or where the
    building was cancelled or the pool broke (taking the answer then raises that)."""
    if not future.done() or future.cancelled() or future.exception() is not None:
        return None
    return future.result()


def _build_in_worker(builder: RequestBuilder, item: Item, folder: Path | None) -> WorkerAnswer:
    """An item's request as a decode worker hands it over: its frames in a file of ``folder``
    when there is one."""
    answer = _build_or_error(builder, item)
    if folder is None or not isinstance(answer, Request) or answer.frames is None:
        return answer
    return _shared(answer, folder)


def _marking_shared(builder: RequestBuilder, items: Iterable[Item]) -> Iterator[tuple[Item, bool]]:
    """Each of ``items`` with whether it shares the video of the item before it (and so takes
    that item's frames): the one place that compares :func:`shared_media_key`."""
    previous: MediaKey | None = None
    for item in items:
        key = shared_media_key(builder, item)
        yield item, key is not None and key == previous
        previous = key


DECODE_WORKER_NICENESS = 10
"""How much lower a decode worker's CPU priority is than the run's."""


def start_decode_worker() -> None:
    """A decode worker leaves Ctrl-C to the run (a terminal sends SIGINT to the whole process
    group, and the run stops its workers itself), and the CPU to the run's own process when
    both want it: the model's work is what the run waits on, the decoding is ahead of it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(DECODE_WORKER_NICENESS)


class DecodePool:
    """Decode worker processes shared by every task of a run: they start once, not per task.

    Made before the model loads, and given the run's first items with :meth:`start_early`,
    the workers' start-up and those items' decoding run on another core while the model
    loads (as many items as that time allows, within :data:`READY_FRAMES_BYTES` of frames);
    :func:`prefetch_requests` then takes their results instead of decoding again.

    Frames come back through a private folder in :data:`SHARED_MEMORY` (see
    :class:`SharedFrames`), removed with everything left in it when the pool closes; without
    that file system they come through the pool's pipe.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"a decode pool needs at least one worker, got {workers}")
        self.workers = workers
        self._folder = _private_folder(SHARED_MEMORY)
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                             initializer=start_decode_worker)
        self._early: dict[tuple[RequestBuilder, str, str], Future] = {}
        self._early_plan: deque[tuple[RequestBuilder, Item]] = deque()
        self._early_bytes = 0
        self._early_budget = 0
        # re-entrant: a callback added to a future already done runs in the adding thread
        self._early_lock = threading.RLock()

    def start_early(self, items: Iterable[Item], builder: RequestBuilder,
                    budget_bytes: int = READY_FRAMES_BYTES) -> None:
        """Start building these items' requests now, in order: one per worker at first, then
        the next each time one is done, until the run asks for its first request (the
        model is loaded) or the frames waiting reach ``budget_bytes``."""
        with self._early_lock:
            firsts = (item for item, shares in _marking_shared(builder, items) if not shares)
            self._early_plan.extend((builder, item) for item in firsts)
            self._early_budget = budget_bytes
            for _ in range(self.workers):
                self._start_next_early()

    def _start_next_early(self) -> None:
        """Submit the next planned item not started yet, if the budget allows (lock held)."""
        while (self._early_plan and self._early_bytes < self._early_budget
               and len(self._early) < READY_REQUESTS):
            builder, item = self._early_plan.popleft()
            key = (builder, item.task, item.id)
            if key in self._early or too_large_to_decode_early(builder, item):
                continue
            try:
                future = self._executor.submit(_build_in_worker, builder, item, self._folder)
            except RuntimeError:  # the pool is shut down or broken: the run will say so
                self._early_plan.clear()
                return
            self._early[key] = future
            future.add_done_callback(self._early_done)
            return

    def _early_done(self, future: Future) -> None:
        answer = _finished_answer(future)
        if answer is None:
            return
        with self._early_lock:
            self._early_bytes += answer_bytes(answer)
            self._start_next_early()

    def submit(self, builder: RequestBuilder, item: Item) -> Future:
        """The worker's answer for ``item`` (give it to :meth:`request`): the one started
        early if there is one, else a new one. The first call ends the early start."""
        with self._early_lock:
            self._early_plan.clear()
            early = self._early.pop((builder.at_decoded_size(), item.task, item.id), None)
        if early is not None:
            return early
        return self._executor.submit(_build_in_worker, builder, item, self._folder)

    @staticmethod
    def request(answer: WorkerAnswer) -> Request | MediaError:
        """The request (or the error) a worker's answer holds, its frames mapped."""
        return answer.mapped() if isinstance(answer, SharedFrames) else answer

    def close(self) -> None:
        """Stop the workers; requests started early and never asked for are dropped, and
        so are frames never taken."""
        with self._early_lock:
            self._early_plan.clear()
            for future in self._early.values():
                future.cancel()
            self._early.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

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
    ``2 * workers``) videos decoding ahead of the consumer: each time it asks for the next
    request, more are started until ``depth`` are decoding, as long as the requests built and
    waiting stay within :data:`READY_FRAMES_BYTES` of frames and :data:`READY_REQUESTS` (so
    the workers go on decoding while the items decoded during the model's loading are
    generated); with 0 and no ``pool``, inline.
    An item on the same video as the item before it (:func:`shared_media_key`) takes that
    item's frames instead of decoding them again; where that item's decoding failed, it is
    decoded itself, so that its error names it.
    """
    if pool is not None:
        yield from _bounded_map(pool, builder, items, depth or 2 * pool.workers)
        return
    if workers <= 0:
        yield from _inline(builder, items)
        return
    with DecodePool(workers) as own_pool:
        yield from _bounded_map(own_pool, builder, items, depth or 2 * workers)


def _inline(
    builder: RequestBuilder, items: Iterable[Item]
) -> Iterator[tuple[Item, Request | MediaError]]:
    previous: Request | MediaError | None = None
    for item, shares in _marking_shared(builder, items):
        if shares and isinstance(previous, Request):
            yield item, builder.sharing(item, previous)
            continue
        previous = _build_or_error(builder, item)
        yield item, previous


class _VideoQueue:
    """Items in order, each with the decoding of its video, or None where it shares the
    video of the item before it."""

    def __init__(self, pool: DecodePool, builder: RequestBuilder) -> None:
        self.pool, self.builder = pool, builder
        self.waiting: deque[tuple[Item, Future | None]] = deque()
        self.leader: Request | MediaError | None = None

    def add(self, item: Item, shares: bool) -> None:
        future = None if shares else self.pool.submit(self.builder, item)
        self.waiting.append((item, future))

    def full(self, depth: int, ready_budget: int) -> bool:
        """Whether ``depth`` videos are decoding, or the requests built and waiting to be
        taken (early, or faster than the model takes them) reach :data:`READY_REQUESTS` or
        ``ready_budget`` bytes of frames."""
        futures = [future for _, future in self.waiting if future is not None]
        ready = [answer for answer in map(_finished_answer, futures) if answer is not None]
        return (len(futures) - len(ready) >= depth or len(ready) >= READY_REQUESTS
                or sum(map(answer_bytes, ready)) >= ready_budget)

    def take(self) -> tuple[Item, Request | MediaError]:
        item, future = self.waiting.popleft()
        if future is not None:
            self.leader = self.pool.request(future.result())
            return item, self.leader
        if isinstance(self.leader, Request):
            return item, self.builder.sharing(item, self.leader)
        return item, self.pool.request(self.pool.submit(self.builder, item).result())


def _bounded_map(
    pool: DecodePool, builder: RequestBuilder, items: Iterable[Item], depth: int,
    ready_budget: int = READY_FRAMES_BYTES,
) -> Iterator[tuple[Item, Request | MediaError]]:
    queue = _VideoQueue(pool, builder)
    for item, shares in _marking_shared(builder, items):
        queue.add(item, shares)
        while queue.waiting and queue.full(depth, ready_budget):
            yield queue.take()
    while queue.waiting:
        yield queue.take()


def _private_folder(parent: Path) -> Path | None:
    """A new folder only this user can read, in ``parent``; None where ``parent`` is not a
    usable folder (no shared memory file system)."""
    try:
        return Path(tempfile.mkdtemp(prefix="p2r-frames-", dir=parent))
    except OSError:
        return None

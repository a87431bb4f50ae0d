"""Frame sampling: the one way p2r turns a video file or a frame folder into model input.

Which frames: :func:`uniform_indices` follows Video-R1 / qwen-vl-utils, ``linspace(0, total-1,
n).round()`` computed in float32 like their ``torch.linspace`` (first and last frame included).
:class:`FramePolicy` chooses ``n``: a fixed count, or a rate (``fps``) clamped to
``[min_frames, max_frames]``, either p2r's way or qwen-vl-utils' (``count_rule``).

Frame size: with ``resize="qwen-vl-utils"`` frames are resized right after they are decoded,
in the decoding process, exactly as qwen-vl-utils' ``fetch_video`` does (its ``smart_resize``
size, float bicubic with antialias, clamped and rounded). With ``resize="processor"`` the
model's processor resizes them; where the run knows that processor's size rule
(:class:`ProcessorFrameSize`, Qwen2-VL's video processor), the frames of a high-resolution
video (over :data:`RESIZE_WHERE_DECODED_FROM_BYTES` at decoded size) are resized to its size
right after decoding too, with the same bicubic, and the processor leaves them as they are.
Each decoding thread resizes its frames in batches of ``RESIZE_BATCH`` (cheaper per frame than
one at a time, and bit-identical) and keeps only resized frames, so memory stays bounded on
high-resolution video; frames it does not resize it keeps as decoded, without a copy.
:mod:`p2r_eval.media.input_policies` names the combinations that reproduce Video-R1, VideoRFT
and lmms-eval.

How frames are decoded (decoder ``"pyav-keyframe"``, the default):

1. Index every frame in display order: its timestamp, and which frames are keyframes.
   MP4/MOV files whose codec does not reorder frames already hold that index (read for free
   on open). Otherwise one demux pass (no decoding) collects every packet's pts and keyframe
   flag; sorting the pts gives display order (correct with B-frames and variable frame
   rates). A free index is trusted only while every decoded frame agrees with it; on the
   first disagreement the demux pass is made and sampling starts over.
2. Walk the wanted indices in increasing order. Seek only when the keyframe that precedes the
   next wanted frame lies after the next frame to decode; otherwise decode on. Frames are
   identified by their pts, so a seek that lands early only costs time, never correctness.
3. Only wanted frames are converted to RGB (``to_ndarray(format="rgb24")``'s conversion, by one
   converter per decoding thread), so the result is pixel-identical to a full sequential decode.

``"pyav-sequential"`` decodes from the start without seeking (a reference and a fallback for
files whose seeking misbehaves). Files without packet timestamps are always decoded
sequentially, frames counted in output order.

Parallel runs: the plan splits into runs, each starting at a keyframe (or the file start)
and decoding on through its wanted frames. Runs are independent, so contiguous groups of runs
of about equal cost (frames to decode) go to up to ``MAX_DECODE_WORKERS`` threads, one
container each (PyAV releases the GIL while decoding). This adds no decoding work; the
codec's own frame threading did (~15% more CPU time for its pipeline, refilled after every
seek) and is left off. The output does not depend on the number of workers.

The time budget (``timeout_s``) is checked between packets and between frames: a single
packet that blocks (e.g. a stalled network file system) is not interrupted.
"""

from __future__ import annotations

import bisect
import math
import os
import re
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image, UnidentifiedImageError

DECODERS = ("pyav-keyframe", "pyav-sequential")
COUNT_RULES = ("p2r", "qwen-vl-utils")
RESIZE_RULES = ("processor", "qwen-vl-utils")
PATCH_FACTOR = 28
"""Qwen2-VL / Qwen2.5-VL frame sides are multiples of this (14-pixel patches, merged 2x2)."""
FRAME_FACTOR = 2
"""qwen-vl-utils' frame counts are multiples of this (two frames make one temporal patch)."""
QWEN_TOTAL_PIXELS = 128000 * 28 * 28 * 0.9
"""qwen-vl-utils' default pixel budget for a whole video (a 128K-token model)."""
MAX_ASPECT_RATIO = 200
RESIZE_BATCH = 4
"""Frames a decoding thread resizes together; at most this many wait at full resolution."""
RESIZE_WHERE_DECODED_FROM_BYTES = 128 << 20
"""Frames are resized to their processor's size where they are decoded only for a video whose
frames at decoded size (RGB, a byte a value) take more than this: 32 frames of 1920x1080 take
199 MB, of 854x480 39 MB. Resizing there keeps full-size frames from being held, which matters
for high-resolution video, but needs torch in the decode worker (about 0.9 s of CPU to import,
once per worker: 7% of the CPU time of an 8-item run on 2 cores, where the model shares the
cores), and it saves no work: the processor resizes the same frames otherwise."""
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
MAX_DECODE_WORKERS = 4
_INDEX_KEYFRAME, _INDEX_DISCARD = 1, 2  # FFmpeg's AVINDEX_KEYFRAME, AVINDEX_DISCARD_FRAME


class VideoError(Exception):
    """A video (or frame folder) that cannot give frames; the message names the file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self) -> tuple[type[VideoError], tuple[Path, str]]:
        return type(self), (self.path, self.reason)  # survives pickling (process pools)


class VideoNotFoundError(VideoError):
    """The file or folder does not exist."""


class VideoUnreadableError(VideoError):
    """Not a video, a corrupt container or stream, or no video stream (e.g. audio only).

    An MP4 cut before its trailing index (``moov``) lands here too: nothing left in it says
    it was a video.
    """


class VideoEmptyError(VideoError):
    """The file holds no frames (a zero-byte file, an empty video stream, an empty folder)."""


class VideoTruncatedError(VideoError):
    """Fewer frames than the container's index or header promised (a cut file).

    Detected from the frame count (MP4, AVI), from sample positions past the end of the file
    (MP4), from a stated duration the frames fall short of by more than 1 s and 5% (formats
    without a frame count, e.g. Matroska), or from a wanted frame that never decodes.
    """


class VideoTimeoutError(VideoError):
    """Reading the frames took longer than the time budget."""


@dataclass(frozen=True)
class ProcessorFrameSize:
    """The size transformers' Qwen2-VL video processor (``Qwen2VLVideoProcessor``, Qwen2.5-VL's
    too) resizes a video's frames to, from that processor's settings: frames resized to it
    right after decoding (:func:`resize_frames_as_processor`, the processor's own bicubic)
    are left as they are by the processor, which resizes only frames of another size.

    ``factor``: patch size times merge size (sides are multiples of it); ``min_pixels`` and
    ``max_pixels``: its ``size`` bounds. ``video_pixel_budget``: with its
    ``cap_pixels_per_frame``, the pixels a whole video may have (each ``temporal_factor``
    frames share an even part of them, never below ``1.05 * min_pixels`` per frame); None
    without that cap. ``min_decoded_bytes``: only videos whose decoded frames take more are
    resized where they are decoded (:data:`RESIZE_WHERE_DECODED_FROM_BYTES`).
    :mod:`p2r_eval.models.frame_size` reads these from a loaded processor
    and checks every item's size against the processor's own.
    """

    factor: int
    min_pixels: int
    max_pixels: int
    video_pixel_budget: int | None = None
    temporal_factor: int = FRAME_FACTOR
    min_decoded_bytes: int = RESIZE_WHERE_DECODED_FROM_BYTES

    def size(self, height: int, width: int, frame_count: int) -> tuple[int, int]:
        """(height, width) the processor gives ``frame_count`` frames of ``height`` x
        ``width``; ValueError for an aspect ratio over 200 (the processor refuses it)."""
        cap = self.max_pixels
        if self.video_pixel_budget is not None:
            share = self.video_pixel_budget * self.temporal_factor // frame_count
            cap = max(min(cap, share), int(self.min_pixels * 1.05))
        return processor_smart_resize(height, width, factor=self.factor,
                                      min_pixels=self.min_pixels, max_pixels=cap)

    def presize(self, height: int, width: int, frame_count: int) -> tuple[int, int] | None:
        """The size to resize frames of ``height`` x ``width`` to after decoding; None where
        the processor would resize frames of that size again (growing to ``min_pixels`` can
        overshoot ``max_pixels``), so that they are left to it, and where they are at that
        size already."""
        target = self.size(height, width, frame_count)
        if target == (height, width) or self.size(*target, frame_count) != target:
            return None
        return target

    def where_decoded(self, height: int, width: int, frame_count: int) -> tuple[int, int] | None:
        """The size to resize ``frame_count`` frames of ``height`` x ``width`` to where they are
        decoded: :meth:`presize`'s for a video whose decoded frames take more than
        ``min_decoded_bytes``, None (left to the processor) for a smaller one."""
        if frame_count * height * width * 3 <= self.min_decoded_bytes:
            return None
        return self.presize(height, width, frame_count)

    def key(self) -> str:
        """The size rule, for frame cache keys (not ``min_decoded_bytes``: a cached entry
        records its frames' decoded size, so frames at either size are read correctly)."""
        return (f"factor={self.factor},min_pixels={self.min_pixels},"
                f"max_pixels={self.max_pixels},video_pixel_budget={self.video_pixel_budget},"
                f"temporal_factor={self.temporal_factor}")


@dataclass(frozen=True)
class FramePolicy:
    """How many frames to take from a video, and how they are decoded; recorded with results.

    ``count_rule="p2r"``: with ``fps`` None, ``num_frames`` frames are taken uniformly (frames
    repeat in a shorter video). With ``fps`` set, the count is ``round(duration * fps)``
    clamped to ``[min_frames, max_frames]`` and to the number of frames the video has (never
    below ``min_frames``).

    ``count_rule="qwen-vl-utils"``: with ``fps`` set, qwen-vl-utils' ``smart_nframes``:
    ``duration * fps`` clamped to ``[min_frames, min(max_frames, frames in the video)]`` (both
    bounds made even) and floored to an even number. With ``fps`` None, ``num_frames`` capped at
    the frames in the video and floored to an even number (what lmms-eval passes to
    qwen-vl-utils as ``nframes``). Never more frames than the video has; a video of one frame
    is refused, as qwen-vl-utils refuses it.

    ``resize="processor"``: ``max_pixels`` is what the model's processor is told (Qwen's
    smart_resize); frames keep their size, or with ``processor_size`` are resized after
    decoding to the size that processor gives them. ``resize="qwen-vl-utils"``: frames are
    resized after decoding as qwen-vl-utils does (:meth:`resized_size`), between
    ``min_pixels`` and ``max_pixels``. ``input_policy`` names the policy
    (:mod:`p2r_eval.media.input_policies`).

    ``processor_size`` is where the run resizes, not what the model sees (the same inputs
    either way): it is part of :meth:`key` (cached frames differ) but not of :meth:`as_dict`
    (what results record).
    """

    num_frames: int = 32
    fps: float | None = None
    min_frames: int = 4
    max_frames: int = 768
    max_pixels: int = 256 * 28 * 28
    decoder: str = "pyav-keyframe"
    input_policy: str = "uniform"
    count_rule: str = "p2r"
    resize: str = "processor"
    min_pixels: int | None = None
    processor_size: ProcessorFrameSize | None = None

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(f"need 1 <= min_frames <= max_frames, got {self.min_frames}, "
                             f"{self.max_frames}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.count_rule not in COUNT_RULES:
            raise ValueError(f"count_rule must be one of {COUNT_RULES}, got {self.count_rule!r}")
        if self.resize not in RESIZE_RULES:
            raise ValueError(f"resize must be one of {RESIZE_RULES}, got {self.resize!r}")
        if self.resize == "qwen-vl-utils" and not (
            self.min_pixels is not None and 1 <= self.min_pixels <= self.max_pixels
        ):
            raise ValueError(f"resize='qwen-vl-utils' needs 1 <= min_pixels <= max_pixels, got "
                             f"{self.min_pixels}, {self.max_pixels}")
        if self.processor_size is not None and self.resize != "processor":
            raise ValueError(f"processor_size applies to resize='processor', not {self.resize!r}")

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        del record["processor_size"]
        return record

    def resized_where_decoded(self, size: ProcessorFrameSize | None) -> FramePolicy:
        """This policy with frames resized after decoding to the processor's ``size`` (None:
        kept at their decoded size for the processor); a named policy, which resizes them
        its own way, as it is."""
        if self.resize != "processor":
            return self
        return replace(self, processor_size=size)

    @property
    def resizes_after_decoding(self) -> bool:
        return self.resize != "processor" or self.processor_size is not None

    def key(self) -> str:
        """A stable string naming this policy (for cache keys and result records)."""
        if self.fps is None:
            count = f"frames={self.num_frames}"
        else:
            count = f"fps={self.fps:g},min={self.min_frames},max={self.max_frames}"
        key = f"{count};max_pixels={self.max_pixels};decoder={self.decoder}"
        if self.processor_size is not None:
            key = f"{key};processor_size={self.processor_size.key()}"
        if (self.count_rule, self.resize) == ("p2r", "processor"):
            return key
        return (f"{key};policy={self.input_policy};count_rule={self.count_rule};"
                f"resize={self.resize};min_pixels={self.min_pixels}")

    def frame_count(self, total_frames: int, duration_s: float) -> int:
        """How many frames to sample from a video of ``total_frames`` frames lasting
        ``duration_s`` (``total_frames / source fps``); ValueError where the rule has none."""
        if self.count_rule == "qwen-vl-utils":
            return self._qwen_frame_count(total_frames, duration_s)
        if self.fps is None:
            return self.num_frames
        upper = max(min(self.max_frames, total_frames), self.min_frames)
        return min(max(round(duration_s * self.fps), self.min_frames), upper)

    def _qwen_frame_count(self, total_frames: int, duration_s: float) -> int:
        if self.fps is None:
            count = max(_floor_by(min(self.num_frames, total_frames), FRAME_FACTOR), FRAME_FACTOR)
        else:
            low = _ceil_by(self.min_frames, FRAME_FACTOR)
            high = _floor_by(min(self.max_frames, total_frames), FRAME_FACTOR)
            wanted = duration_s * self.fps
            count = _floor_by(min(min(max(wanted, low), high), total_frames), FRAME_FACTOR)
        if not FRAME_FACTOR <= count <= total_frames:
            raise ValueError(f"input policy {self.input_policy} needs at least {FRAME_FACTOR} "
                             f"frames, the video has {total_frames}")
        return count

    def resized_size(self, height: int, width: int, frame_count: int) -> tuple[int, int] | None:
        """(height, width) a ``height`` x ``width`` frame of a ``frame_count``-frame clip is
        resized to after decoding, None when the processor resizes instead.

        qwen-vl-utils' ``fetch_video``: the frame cap is ``max_pixels``, lowered to the
        video's pixel budget per two frames and raised to ``1.05 * min_pixels``; then
        ``smart_resize`` (sides multiples of 28, aspect ratio kept, pixels in range)."""
        if self.resize == "processor":
            if self.processor_size is None:
                return None
            return self.processor_size.where_decoded(height, width, frame_count)
        assert self.min_pixels is not None
        budget = QWEN_TOTAL_PIXELS / frame_count * FRAME_FACTOR
        cap = max(min(self.max_pixels, budget), int(self.min_pixels * 1.05))
        return smart_resize(height, width, min_pixels=self.min_pixels, max_pixels=cap)

    @property
    def processor_max_pixels(self) -> int | None:
        """The ``max_pixels`` to give the model's processor: ``max_pixels`` when it resizes,
        None for frames resized after decoding (the processor keeps the checkpoint's own
        bounds, as the reference pipelines do, and leaves their size as it is)."""
        return self.max_pixels if self.resize == "processor" else None


def _floor_by(number: float, factor: int) -> int:
    return math.floor(number / factor) * factor


def _ceil_by(number: float, factor: int) -> int:
    return math.ceil(number / factor) * factor


def smart_resize(
    height: int, width: int, *, min_pixels: int, max_pixels: float, factor: int = PATCH_FACTOR
) -> tuple[int, int]:
    """Qwen's frame size: sides multiples of ``factor``, as close to ``height`` x ``width`` as
    that allows (Python's round, ties to even), then scaled into ``[min_pixels, max_pixels]``
    with the aspect ratio kept (floored when shrinking, ceiled when growing)."""
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"aspect ratio over {MAX_ASPECT_RATIO}: {width}x{height}")
    new_height = max(factor, round(height / factor) * factor)
    new_width = max(factor, round(width / factor) * factor)
    if new_height * new_width > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        new_height = _floor_by(height / beta, factor)
        new_width = _floor_by(width / beta, factor)
    elif new_height * new_width < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        new_height = _ceil_by(height * beta, factor)
        new_width = _ceil_by(width * beta, factor)
    return new_height, new_width


def processor_smart_resize(
    height: int, width: int, *, factor: int, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """transformers' smart_resize (Qwen2-VL's processors), which differs from
    :func:`smart_resize` (qwen-vl-utils') at the edges: a side rounded to 0 is not raised to
    ``factor`` before the pixel bounds are checked, and a shrunk side is."""
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"aspect ratio over {MAX_ASPECT_RATIO}: {width}x{height}")
    new_height = round(height / factor) * factor
    new_width = round(width / factor) * factor
    if new_height * new_width > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        new_height = max(factor, _floor_by(height / beta, factor))
        new_width = max(factor, _floor_by(width / beta, factor))
    elif new_height * new_width < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        new_height = _ceil_by(height * beta, factor)
        new_width = _ceil_by(width * beta, factor)
    return new_height, new_width


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB frames (T, H, W, 3) resized to ``size`` (height, width) as qwen-vl-utils resizes
    (torchvision's tensor ``resize``, BICUBIC with antialias): float32 bicubic interpolation
    with antialias, clamped to [0, 255] and rounded back to uint8. Each frame's result does
    not depend on the others in the batch."""
    import torch

    video = torch.from_numpy(frames).permute(0, 3, 1, 2)
    resized = torch.nn.functional.interpolate(
        video.to(torch.float32), size=list(size), mode="bicubic", align_corners=False,
        antialias=True,
    )
    resized = torch.round(resized.clamp(min=0, max=255)).to(torch.uint8)
    return np.ascontiguousarray(resized.permute(0, 2, 3, 1).numpy())


def resize_frames_as_processor(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB frames (T, H, W, 3) resized to ``size`` (height, width) as transformers' video
    processors resize them on the CPU (torchvision's v2 ``resize`` of a uint8 tensor: BICUBIC
    with antialias computed on the uint8 values themselves, which differs from
    :func:`resize_frames`' float computation). Each frame's result does not depend on the
    others in the batch."""
    import torch

    video = torch.from_numpy(frames).permute(0, 3, 1, 2)
    resized = torch.nn.functional.interpolate(
        video, size=list(size), mode="bicubic", align_corners=False, antialias=True
    )
    return np.ascontiguousarray(resized.permute(0, 2, 3, 1).numpy())


@dataclass(frozen=True)
class SampledFrames:
    """Frames taken from one video, in the order of ``indices``.

    ``sample_fps`` is the rate the sampled frames represent over the whole video,
    ``T / total_frames * source_fps`` (= T / duration), computed in qwen-vl-utils' order: what
    it passes to Qwen2.5-VL as the video fps (its ``second_per_grid_ts`` derive from it).
    ``timestamps`` are seconds from the first frame.
    """

    frames: np.ndarray
    indices: tuple[int, ...]
    timestamps: tuple[float, ...]
    sample_fps: float
    source_fps: float
    total_frames: int
    decoded_size: tuple[int, int] | None = None
    """(height, width) of the frames as decoded, before any resize (None: not recorded, in a
    frame cache entry written before it was)."""


def uniform_indices(total: int, n: int) -> list[int]:
    """``n`` frame indices spread evenly over ``total`` frames, first and last included.

    The same indices as Video-R1's / qwen-vl-utils' ``torch.linspace(0, total - 1, n).round()``:
    float32 steps, the second half counted back from the end (fused multiply-subtract, as
    torch's CPU kernel is compiled for x86-64 with AVX2 and for ARM), ties rounded to even.
    Checked against torch on ~27,000 (total, n) pairs. ``n`` larger than ``total`` is allowed
    and repeats frames (qwen-vl-utils refuses it; repeating keeps a policy's frame count
    fixed on very short clips).
    """
    if total < 1 or n < 1:
        raise ValueError(f"need total >= 1 and n >= 1, got total={total}, n={n}")
    if n == 1:
        return [0]
    end = np.float32(total - 1)
    step = end / np.float32(n - 1)
    halfway = n // 2
    first_half = step * np.arange(halfway, dtype=np.float32)
    # float64 holds end - step * k exactly, so one rounding to float32 is what an FMA gives.
    steps_back = np.arange(n - halfway - 1, -1, -1, dtype=np.float64)
    second_half = (np.float64(end) - np.float64(step) * steps_back).astype(np.float32)
    return [int(v) for v in np.round(np.concatenate([first_half, second_half]))]


def sample_frames(
    path: str | Path,
    num_frames: int = 32,
    *,
    policy: FramePolicy | None = None,
    timeout_s: float | None = 600,
) -> SampledFrames:
    """Decode the frames ``policy`` asks for (``policy`` wins over ``num_frames``).

    Raises a :class:`VideoError` subclass naming the file for a missing, unreadable, empty
    or truncated video, or when decoding takes longer than ``timeout_s`` seconds.
    """
    policy = policy or FramePolicy(num_frames=num_frames)
    path = Path(path)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    _check_file(path)
    index = _container_index(path) or _demuxed_index(path, deadline)
    try:
        return _sample(path, index, policy, deadline)
    except _IndexMismatch:
        return _sample(path, _demuxed_index(path, deadline), policy, deadline)


def _sample(
    path: Path, index: _FrameIndex, policy: FramePolicy, deadline: float | None
) -> SampledFrames:
    duration_s = index.total / index.source_fps
    indices = uniform_indices(index.total, _frame_count(path, policy, index.total, duration_s))
    seek = policy.decoder == "pyav-keyframe" and index.timestamps is not None
    resizer = _FrameResizer(path, policy, len(indices)) if policy.resizes_after_decoding else None
    decoded = _decode_wanted(path, index, sorted(set(indices)), seek=seek, deadline=deadline,
                             resizer=resizer)
    shapes = {source_shape for source_shape, _ in decoded.values()}
    if len(shapes) > 1:
        raise VideoUnreadableError(path, f"frame size changes within the video: {sorted(shapes)}")
    (source_shape,) = shapes
    return SampledFrames(
        frames=np.stack([decoded[i][1] for i in indices]),
        indices=tuple(indices),
        timestamps=tuple(index.seconds(i) for i in indices),
        sample_fps=len(indices) / index.total * index.source_fps,
        source_fps=index.source_fps,
        total_frames=index.total,
        decoded_size=(source_shape[0], source_shape[1]),
    )


def decoded_frames_bytes(path: str | Path, policy: FramePolicy) -> int | None:
    """About how many bytes ``policy``'s frames of the video at ``path`` take at their decoded
    size (RGB, a byte a value), from the container's header alone (no decoding, no pass over
    the file); None where the file or its header does not say. A guess, for deciding what to
    decode before the model's processor is known, never for what the frames are."""
    path = Path(path)
    try:
        if not path.is_file():  # a missing file, a folder, a pipe: its sampling says what
            return None
        container, stream = _open_video(path)
    except (VideoError, OSError):
        return None
    with container:
        width, height = stream.codec_context.width, stream.codec_context.height
        total, duration_s = stream.frames, _declared_seconds(container, stream)
    if not (width and height and total and duration_s):
        return None
    try:
        count = policy.frame_count(total, duration_s)
    except ValueError:
        return None
    return count * height * width * 3


def load_frame_folder(
    path: str | Path,
    policy: FramePolicy | None = None,
    *,
    source_fps: float,
) -> SampledFrames:
    """Sample a folder of image files (one frame each) the way :func:`sample_frames` does.

    Files are ordered by name with digit runs compared as numbers (``2.jpg`` before
    ``10.jpg``); ``source_fps`` is the rate the frames were extracted at (a fact of the data:
    the task YAML's ``frame_folder_fps``, carried on the item). An image that is a
    link leading out of the folder is refused (the folder must not read outside data).
    """
    policy = policy or FramePolicy()
    folder = Path(path)
    if not folder.exists():
        raise VideoNotFoundError(folder, "frame folder not found")
    if not folder.is_dir():
        raise VideoUnreadableError(folder, "not a folder of frames")
    images = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=_natural_key,
    )
    if not images:
        raise VideoEmptyError(folder, f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    inside = folder.resolve()
    for image in images:
        if not image.resolve().is_relative_to(inside):
            raise VideoUnreadableError(image, "frame image links outside its folder; refused")
    total = len(images)
    indices = uniform_indices(total, _frame_count(folder, policy, total, total / source_fps))
    resizer = _FrameResizer(folder, policy, len(indices))
    loaded = {i: _read_image(images[i]) for i in sorted(set(indices))}
    shapes = {image.shape for image in loaded.values()}
    if len(shapes) > 1:
        raise VideoUnreadableError(folder, f"frames differ in size: {sorted(shapes)}")
    order = sorted(loaded)
    resized = dict(zip(order, resizer(np.stack([loaded[i] for i in order])), strict=True))
    (source_shape,) = shapes
    return SampledFrames(
        frames=np.stack([resized[i] for i in indices]),
        indices=tuple(indices),
        timestamps=tuple(i / source_fps for i in indices),
        sample_fps=len(indices) / total * source_fps,
        source_fps=source_fps,
        total_frames=total,
        decoded_size=(source_shape[0], source_shape[1]),
    )


def _frame_count(path: Path, policy: FramePolicy, total: int, duration_s: float) -> int:
    try:
        return policy.frame_count(total, duration_s)
    except ValueError as error:
        raise VideoEmptyError(path, str(error)) from error


@dataclass(frozen=True)
class _FrameResizer:
    """Resizes decoded frames (T, H, W, 3) of one size as ``policy`` says (unchanged when the
    processor resizes)."""

    path: Path
    policy: FramePolicy
    frame_count: int

    def resizes(self, height: int, width: int) -> bool:
        """Whether frames of ``height`` x ``width`` are resized (else kept as they are)."""
        return self._size(height, width) is not None

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        size = self._size(frames.shape[1], frames.shape[2])
        if size is None:
            return frames
        if self.policy.processor_size is not None:
            return resize_frames_as_processor(frames, size)
        return resize_frames(frames, size)

    def _size(self, height: int, width: int) -> tuple[int, int] | None:
        try:
            return self.policy.resized_size(height, width, self.frame_count)
        except ValueError as error:
            raise VideoUnreadableError(self.path, str(error)) from error


def _natural_key(path: Path) -> list[tuple[int, int | str]]:
    return [(0, int(part)) if part.isdigit() else (1, part)
            for part in re.split(r"(\d+)", path.name) if part]


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise VideoUnreadableError(path, f"unreadable image: {error}") from error


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoNotFoundError(path, "video file not found")
    if path.is_dir():
        raise VideoUnreadableError(path, "is a folder, not a video file (frame folders: "
                                         "load_frame_folder)")
    if path.stat().st_size == 0:
        raise VideoEmptyError(path, "file is empty (0 bytes)")


@dataclass(frozen=True)
class _FrameIndex:
    """Every frame of the video stream, in display order.

    ``timestamps`` (``time_base`` units) or None when the container gives none; then frames
    are counted in output order and never sought. ``keyframes``: display indices, increasing.
    ``confirmed`` is False for an index read from the container's own seek index rather than
    from a demux pass: it is trusted only while every decoded frame agrees with it. ``rank_of``
    maps timestamps to display indices (confirmed indexes only; unconfirmed ones check each
    frame against the one expected next).
    """

    total: int
    timestamps: tuple[int, ...] | None
    keyframes: tuple[int, ...]
    time_base: Fraction
    source_fps: float
    confirmed: bool = True
    rank_of: dict[int, int] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ranks = None
        if self.timestamps is not None and self.confirmed:
            ranks = {timestamp: rank for rank, timestamp in enumerate(self.timestamps)}
        object.__setattr__(self, "rank_of", ranks)  # display index by timestamp

    def keyframe_before(self, rank: int) -> int:
        """Display index of the last keyframe at or before display index ``rank`` (0 if none)."""
        position = bisect.bisect_right(self.keyframes, rank)
        return self.keyframes[position - 1] if position else 0

    def seconds(self, rank: int) -> float:
        if self.timestamps is None:
            return rank / self.source_fps
        return float((self.timestamps[rank] - self.timestamps[0]) * self.time_base)


class _IndexMismatch(Exception):
    """A decoded frame contradicts an unconfirmed index: demux and start over."""


def _open_video(path: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoUnreadableError(path, f"not a readable video: {error}") from error
    if not container.streams.video:
        container.close()
        raise VideoUnreadableError(path, "no video stream")
    return container, container.streams.video[0]


def _container_index(path: Path) -> _FrameIndex | None:
    """The frame index without a pass over the file, where the container already holds one.

    MP4/MOV (and AVI) list every sample with its position, decode timestamp and keyframe
    flag. Without frame reordering, decode order is display order and the index is all the
    plan needs; it saves a demux pass (a tenth of the time on long videos). None when the
    index is partial (e.g. Matroska cues), the codec may reorder frames, or PyAV is older
    than 17 (no index entries): the demux pass then builds the index.
    """
    container, stream = _open_video(path)
    with container:
        if stream.codec_context.has_b_frames or stream.frames <= 0:
            return None
        entries = getattr(stream, "index_entries", None)  # PyAV >= 17
        if not entries:
            return None
        kept = [(e.timestamp, e.flags) for e in entries if not e.flags & _INDEX_DISCARD]
        if len(kept) != stream.frames:
            return None
        if entries[-1].pos + entries[-1].size > path.stat().st_size:
            raise VideoTruncatedError(path, f"index of {stream.frames} frames points past the "
                                            f"end of the file")
        timestamps = tuple(timestamp for timestamp, _ in kept)
        keyframes = tuple(rank for rank, (_, flags) in enumerate(kept) if flags & _INDEX_KEYFRAME)
        if not keyframes or keyframes[0] != 0 or any(
            later <= earlier for earlier, later in zip(timestamps[:-1], timestamps[1:], strict=True)
        ):
            return None
        time_base = stream.time_base or Fraction(1, 1)
        rate = stream.average_rate or stream.guessed_rate
    return _FrameIndex(len(kept), timestamps, keyframes, time_base,
                       _source_fps(rate, timestamps, time_base), confirmed=False)


def _demuxed_index(path: Path, deadline: float | None) -> _FrameIndex:
    """The frame index from one demux pass (no decoding): every packet's pts and keyframe flag."""
    container, stream = _open_video(path)
    with container:
        declared = stream.frames
        pts: list[int | None] = []
        keyframe_flags: list[bool] = []
        try:
            for packet in container.demux(stream):
                _check_deadline(path, deadline, "reading the packet index")
                if packet.size == 0 or packet.is_discard:
                    continue
                pts.append(packet.pts)
                keyframe_flags.append(packet.is_keyframe)
        except av.error.FFmpegError as error:
            raise VideoUnreadableError(path, f"corrupt container: {error}") from error
        time_base = stream.time_base or Fraction(1, 1)
        rate = stream.average_rate or stream.guessed_rate
        declared_s = _declared_seconds(container, stream)
    total = len(pts)
    if total == 0:
        raise VideoEmptyError(path, "video stream has no frames")
    if declared > total:
        raise VideoTruncatedError(path, f"header promises {declared} frames, file holds {total}")
    known_pts = [timestamp for timestamp in pts if timestamp is not None]
    if len(known_pts) < total:
        return _FrameIndex(total, None, (0,), time_base, float(rate) if rate else 1.0)
    order = sorted(range(total), key=lambda i: known_pts[i])
    display_pts = tuple(known_pts[i] for i in order)
    keyframes = tuple(rank for rank, i in enumerate(order) if keyframe_flags[i])
    index = _FrameIndex(total, display_pts, keyframes or (0,), time_base,
                        _source_fps(rate, display_pts, time_base))
    covered_s = index.seconds(total - 1) + 1 / index.source_fps
    if declared_s is not None and declared_s - covered_s > max(1.0, 0.05 * declared_s):
        raise VideoTruncatedError(path, f"header says {declared_s:.1f} s, frames cover "
                                        f"{covered_s:.1f} s")
    return index


def _declared_seconds(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float | None:
    """The video's duration as its header states it, when the header states it for the video.

    Formats without a frame count (Matroska, WebM) still state a duration: frames covering
    clearly less of it (by more than 1 s and 5%) mean the file was cut. The container's
    duration is used only when the video is its one stream (audio may outlast video).
    """
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and len(container.streams) == 1:
        return container.duration / av.time_base
    return None


def _source_fps(rate: Fraction | None, timestamps: Sequence[int], time_base: Fraction) -> float:
    """The container's average frame rate, else frames per second over the timestamp span."""
    if rate:
        return float(rate)
    span = float((timestamps[-1] - timestamps[0]) * time_base)
    return (len(timestamps) - 1) / span if span > 0 else 1.0


def _check_deadline(path: Path, deadline: float | None, doing: str) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise VideoTimeoutError(path, f"time budget exceeded while {doing}")


class _FrameWalker:
    """Decodes one video forward, seeking when told; yields (display index, frame).

    Frames are identified by pts. With an unconfirmed index every frame must be exactly the
    one expected next (the keyframe right after a seek, then consecutive frames with the
    indexed timestamps), else :class:`_IndexMismatch`.
    """

    def __init__(self, path: Path, index: _FrameIndex, deadline: float | None) -> None:
        self.path, self.index, self.deadline = path, index, deadline
        self.container, self.stream = _open_video(path)
        # One converter for every frame: ``frame.to_ndarray(format=...)`` makes a new one, and
        # its own scaling context, for each frame (about half the cost of converting a frame).
        self.reformatter = VideoReformatter()
        self.rank_of = index.rank_of
        self.position = -1
        self.expected = 0
        self._frames: Iterator[tuple[int, av.VideoFrame]] = self._decode()

    def close(self) -> None:
        self.container.close()

    def seek_to_keyframe(self, keyframe: int) -> None:
        """Continue from keyframe ``keyframe`` (a display index)."""
        assert self.index.timestamps is not None
        self.container.seek(self.index.timestamps[keyframe], stream=self.stream, backward=True)
        self.expected = keyframe
        self._frames = self._decode()

    def frames(self) -> Iterator[tuple[int, av.VideoFrame]]:
        return self._frames

    def rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """``frame`` as RGB (H, W, 3): the pixels of ``frame.to_ndarray(format="rgb24")``."""
        return self.reformatter.reformat(frame, format="rgb24").to_ndarray()

    def _decode(self) -> Iterator[tuple[int, av.VideoFrame]]:
        try:
            for packet in self.container.demux(self.stream):
                for frame in packet.decode():
                    _check_deadline(self.path, self.deadline, "decoding")
                    rank = self._rank(frame)
                    if rank is None:
                        continue
                    self.position, self.expected = rank, rank + 1
                    yield rank, frame
        except av.error.FFmpegError as error:
            raise VideoUnreadableError(
                self.path, f"corrupt video data after frame {self.position}: {error}"
            ) from error

    def _rank(self, frame: av.VideoFrame) -> int | None:
        if self.index.timestamps is None:
            return self.position + 1
        if self.rank_of is not None:
            return None if frame.pts is None else self.rank_of.get(frame.pts)
        expected = self.expected
        if expected >= self.index.total or frame.pts != self.index.timestamps[expected]:
            raise _IndexMismatch
        return expected


Decoded = dict[int, tuple[tuple[int, ...], np.ndarray]]
"""Display index -> (shape of the decoded RGB frame, frame as kept: resized or not)."""


class _ConvertedFrames:
    """The frames one decoding thread keeps: those ``resizer`` resizes, resized in batches of
    ``RESIZE_BATCH`` frames of one size, so at most that many wait at full resolution; the
    others (no ``resizer``: the processor resizes) kept as decoded, without a batch's copy."""

    def __init__(self, resizer: _FrameResizer | None) -> None:
        self.resizer = resizer
        self.done: Decoded = {}
        self.waiting: dict[int, np.ndarray] = {}

    def __contains__(self, rank: int) -> bool:
        return rank in self.done or rank in self.waiting

    def add(self, rank: int, frame: np.ndarray) -> None:
        if self.resizer is None or not self.resizer.resizes(frame.shape[0], frame.shape[1]):
            self.done[rank] = (frame.shape, frame)
            return
        if self.waiting and next(iter(self.waiting.values())).shape != frame.shape:
            self.flush()
        self.waiting[rank] = frame
        if len(self.waiting) >= RESIZE_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.waiting or self.resizer is None:
            return
        ranks = list(self.waiting)
        batch = np.stack([self.waiting[rank] for rank in ranks])
        for rank, converted in zip(ranks, self.resizer(batch), strict=True):
            self.done[rank] = (batch.shape[1:], converted)
        self.waiting.clear()


def _decode_wanted(
    path: Path,
    index: _FrameIndex,
    wanted: list[int],
    *,
    seek: bool,
    deadline: float | None,
    resizer: _FrameResizer | None,
) -> Decoded:
    """The ``wanted`` display indices (sorted, unique), each resized right after decoding
    where ``resizer`` resizes it."""
    runs = _plan_runs(index, wanted) if seek else [wanted]
    groups = _balanced_groups(index, runs, min(len(runs), usable_cores(), MAX_DECODE_WORKERS))

    def decode(targets: list[int]) -> Decoded:
        return _decode_targets(path, index, targets, seek=seek, deadline=deadline,
                               resizer=resizer)

    if len(groups) == 1:
        return decode(groups[0])
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        parts = pool.map(decode, groups)
        return {rank: frame for part in parts for rank, frame in part.items()}


def _plan_runs(index: _FrameIndex, wanted: list[int]) -> list[list[int]]:
    """Split the sorted wanted indices where decoding on would cross a keyframe: seek there."""
    runs: list[list[int]] = []
    for target in wanted:
        if runs and index.keyframe_before(target) <= runs[-1][-1] + 1:
            runs[-1].append(target)
        else:
            runs.append([target])
    return runs


def _balanced_groups(index: _FrameIndex, runs: list[list[int]], count: int) -> list[list[int]]:
    """Contiguous groups of runs, ``count`` at most, of about equal decoding cost (frames)."""
    costs = [run[-1] - index.keyframe_before(run[0]) + 1 for run in runs]
    share = sum(costs) / count
    groups: list[list[int]] = [[]]
    spent = 0
    for run, cost in zip(runs, costs, strict=True):
        if groups[-1] and spent + cost / 2 > share * len(groups) and len(groups) < count:
            groups.append([])
        groups[-1].extend(run)
        spent += cost
    return groups


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _decode_targets(
    path: Path,
    index: _FrameIndex,
    wanted: list[int],
    *,
    seek: bool,
    deadline: float | None,
    resizer: _FrameResizer | None,
) -> Decoded:
    """Decode the ``wanted`` display indices (sorted) with one container, in one pass."""
    walker = _FrameWalker(path, index, deadline)
    decoded = _ConvertedFrames(resizer)
    try:
        for target in wanted:
            keyframe = index.keyframe_before(target)
            seeked = seek and keyframe > walker.position + 1
            if seeked:
                walker.seek_to_keyframe(keyframe)
            if not _decode_until(walker, target, decoded, after_seek=seeked):
                # The seek landed past the target (a demuxer that indexes by another
                # timestamp than pts): decode from the start instead.
                walker.close()
                walker = _FrameWalker(path, index, deadline)
                _decode_until(walker, target, decoded, after_seek=False)
            if target not in decoded:
                raise VideoTruncatedError(path, f"frame {target} of {index.total} could not be "
                                                f"decoded (last decoded: {walker.position})")
        decoded.flush()
    finally:
        walker.close()
    return decoded.done


def _decode_until(
    walker: _FrameWalker, target: int, decoded: _ConvertedFrames, *, after_seek: bool
) -> bool:
    """Decode on to display index ``target`` and keep it (converted to RGB) if it comes.

    Returns False, decoding nothing, if right after a seek the first frame is past ``target``.
    """
    for rank, frame in walker.frames():
        if after_seek and rank > target:
            return False
        after_seek = False
        if rank == target:
            decoded.add(rank, walker.rgb(frame))
            return True
        if rank > target:
            return True
    return True

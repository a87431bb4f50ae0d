"""Deterministic synthetic media for the demo suite, the tests and the perf scripts.

Every frame is drawn by :func:`render_frame`: a smooth seeded texture that scrolls, a square
that moves, and the frame number written as a 16-bit bar code along the top edge, so that
any decoded frame can be identified (:func:`read_frame_number`) and no two frames of a clip
are alike. The same arguments always give a byte-identical file: the encoders used here
(libx264, mpeg4) are deterministic when single-threaded, and the muxer writes no creation
time.

Bad media for error-path tests: :func:`write_zero_byte_file`, :func:`write_text_file`,
:func:`write_truncated_copy`, :func:`write_corrupted_copy`, :func:`write_audio_only`,
:func:`write_empty_video`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
from PIL import Image

FRAME_NUMBER_BITS = 16
_DARK, _LIGHT = 16, 235


def default_video_codec() -> str:
    """``libx264`` where this PyAV build has it, else the always-built-in ``mpeg4``."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


@lru_cache(maxsize=4)
def _texture(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth, seeded RGB texture (sums of a few sinusoids): compressible but not flat."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    channels = []
    for _ in range(3):
        fx, fy = rng.uniform(1.0, 4.0, size=2)
        phase = rng.uniform(0.0, 2 * np.pi, size=2)
        wave = np.sin(2 * np.pi * fx * x + phase[0]) + np.cos(2 * np.pi * fy * y + phase[1])
        channels.append(128.0 + 45.0 * wave)
    texture = np.stack(channels, axis=-1).clip(0, 255).astype(np.uint8)
    texture.setflags(write=False)
    return texture


def _bar_height(height: int) -> int:
    return max(4, height // 8)


def render_frame(index: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """Frame ``index`` of the synthetic clip: uint8 (height, width, 3) RGB.

    Needs ``width >= 2 * FRAME_NUMBER_BITS`` so every bit of the frame number gets at least
    two pixel columns.
    """
    if width < 2 * FRAME_NUMBER_BITS or height < 16:
        raise ValueError(f"frame size {width}x{height} too small (min {2 * FRAME_NUMBER_BITS}x16)")
    if not 0 <= index < 2**FRAME_NUMBER_BITS:
        raise ValueError(f"frame index {index} does not fit {FRAME_NUMBER_BITS} bits")
    frame = np.roll(_texture(height, width, seed), shift=2 * index, axis=1)
    side = max(4, min(width, height) // 4)
    top = _bar_height(height) + (3 * index) % (height - _bar_height(height) - side)
    left = (5 * index) % (width - side)
    frame[top : top + side, left : left + side] = ((37 * index) % 256, 255 - (11 * index) % 256, 64)
    bar = frame[: _bar_height(height)]
    bit_width = width // FRAME_NUMBER_BITS
    for bit in range(FRAME_NUMBER_BITS):
        level = _LIGHT if (index >> (FRAME_NUMBER_BITS - 1 - bit)) & 1 else _DARK
        bar[:, bit * bit_width : (bit + 1) * bit_width] = level
    return frame


def read_frame_number(frame: np.ndarray) -> int:
    """The frame number :func:`render_frame` drew into ``frame`` (robust to lossy coding)."""
    height, width = frame.shape[:2]
    bar_height, bit_width = _bar_height(height), width // FRAME_NUMBER_BITS
    number = 0
    for bit in range(FRAME_NUMBER_BITS):
        cell = frame[1 : bar_height - 1, bit * bit_width : (bit + 1) * bit_width]
        inner = cell[:, 1:-1] if bit_width > 2 else cell
        number = (number << 1) | int(inner.mean() > (_DARK + _LIGHT) / 2)
    return number


def write_video(
    path: str | Path,
    *,
    seconds: float,
    fps: int = 30,
    width: int = 64,
    height: int = 48,
    gop: int = 12,
    b_frames: int = 0,
    seed: int = 0,
    codec: str | None = None,
    preset: str = "ultrafast",
    faststart: bool = False,
) -> Path:
    """Write ``round(seconds * fps)`` synthetic frames at a constant rate; returns the path.

    ``gop`` is the keyframe interval, ``b_frames`` the maximum number of consecutive
    B-frames (x264 ignores its preset's B-frame setting in favour of this one), ``preset``
    the x264 speed preset, ``faststart`` puts the MP4 index before the media data (what a
    truncated copy needs to still open).
    """
    count = round(seconds * fps)
    return _encode(
        Path(path),
        draw=lambda index: render_frame(index, width, height, seed),
        timestamps=[Fraction(i, fps) for i in range(count)],
        rate=fps,
        time_base=Fraction(1, fps),
        width=width,
        height=height,
        gop=gop,
        b_frames=b_frames,
        codec=codec or default_video_codec(),
        preset=preset,
        faststart=faststart,
    )


def write_vfr_video(
    path: str | Path,
    *,
    timestamps: Sequence[float],
    width: int = 64,
    height: int = 48,
    gop: int = 12,
    seed: int = 0,
    codec: str | None = None,
) -> Path:
    """Write one synthetic frame per timestamp (seconds, increasing): a variable-rate clip.

    Timestamps are kept to the millisecond; the encoder is told a nominal 30 fps (its rate
    control needs one), the container records the real times.
    """
    milliseconds = [round(t * 1000) for t in timestamps]
    gaps = np.diff(milliseconds)
    if not milliseconds or (gaps <= 0).any():
        raise ValueError("timestamps must be non-empty and increase by at least 1 ms")
    time_base = Fraction(1, 1000)
    return _encode(
        Path(path),
        draw=lambda index: render_frame(index, width, height, seed),
        timestamps=[Fraction(ms, 1000) for ms in milliseconds],
        rate=30,
        time_base=time_base,
        width=width,
        height=height,
        gop=gop,
        b_frames=0,
        codec=codec or default_video_codec(),
        preset="ultrafast",
        faststart=False,
    )


def write_frames_video(
    path: str | Path, frames: Sequence[np.ndarray], *, fps: int, codec: str | None = None
) -> Path:
    """Encode given uint8 RGB ``frames`` (all of one even size) at a constant ``fps``, with
    the same deterministic encoder settings as :func:`write_video`."""
    if not frames:
        raise ValueError("write_frames_video needs at least one frame")
    height, width = frames[0].shape[:2]
    return _encode(
        Path(path),
        draw=lambda index: frames[index],
        timestamps=[Fraction(i, fps) for i in range(len(frames))],
        rate=fps,
        time_base=Fraction(1, fps),
        width=width,
        height=height,
        gop=len(frames),
        b_frames=0,
        codec=codec or default_video_codec(),
        preset="ultrafast",
        faststart=False,
    )


def _encode(
    path: Path,
    *,
    draw: Callable[[int], np.ndarray],
    timestamps: Sequence[Fraction],
    rate: int,
    time_base: Fraction,
    width: int,
    height: int,
    gop: int,
    b_frames: int,
    codec: str,
    preset: str,
    faststart: bool,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    container_options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=container_options) as container:
        stream = container.add_stream(codec, rate=rate)
        if not isinstance(stream, av.VideoStream):
            raise ValueError(f"{codec} is not a video codec")
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = time_base
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = b_frames
        stream.codec_context.thread_count = 1  # the bitstream must not depend on the machine
        if codec == "libx264":
            stream.options = {"preset": preset, "crf": "23"}
        else:
            # PyAV's qscale is the fixed-quantiser flag (it was set with 4, which meant True)
            stream.codec_context.qscale = True
        for index, timestamp in enumerate(timestamps):
            frame = av.VideoFrame.from_ndarray(draw(index), "rgb24")
            frame.pts, frame.time_base = int(timestamp / time_base), time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_image(
    path: str | Path, *, width: int = 64, height: int = 48, index: int = 0, seed: int = 0
) -> Path:
    """Write frame ``index`` of the synthetic clip as an image (format from the suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(render_frame(index, width, height, seed)).save(path)
    return path


def write_frame_folder(
    path: str | Path,
    n: int,
    *,
    width: int = 64,
    height: int = 48,
    seed: int = 0,
    suffix: str = ".png",
    name_pattern: str = "{index:05d}",
) -> Path:
    """Write ``n`` synthetic frames as numbered images in folder ``path`` (MVBench style)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(n):
        name = name_pattern.format(index=index + 1) + suffix
        write_image(folder / name, width=width, height=height, index=index, seed=seed)
    return folder


def write_zero_byte_file(path: str | Path) -> Path:
    path = Path(path)
    path.write_bytes(b"")
    return path


def write_text_file(path: str | Path) -> Path:
    """Plain text under a video name (e.g. ``not_a_video.mp4``)."""
    path = Path(path)
    path.write_text("This is a text file, not a video.\n" * 20)
    return path


def write_truncated_copy(source: str | Path, path: str | Path, keep: float = 0.5) -> Path:
    """Copy the first ``keep`` fraction of ``source``'s bytes: a download cut short.

    An MP4 keeps opening after the cut only if its index comes first (``faststart``);
    otherwise the cut copy has no index at all and is simply unreadable.
    """
    data = Path(source).read_bytes()
    path = Path(path)
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_corrupted_copy(
    source: str | Path, path: str | Path, *, start: float = 0.4, length: float = 0.2, seed: int = 0
) -> Path:
    """Copy ``source`` with a span of its bytes (fractions of its size) replaced by noise."""
    data = bytearray(Path(source).read_bytes())
    first, count = int(len(data) * start), max(1, int(len(data) * length))
    noise = np.random.default_rng(seed).integers(0, 256, size=count, dtype=np.uint8)
    data[first : first + count] = noise.tobytes()
    path = Path(path)
    path.write_bytes(bytes(data))
    return path


def write_audio_only(path: str | Path, *, seconds: float = 1.0, rate: int = 16000) -> Path:
    """An AAC sine tone in an MP4 container: a file with no video stream."""
    path = Path(path)
    samples = round(seconds * rate)
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / rate)).astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        frame_size = 1024
        for start in range(0, samples, frame_size):
            chunk = tone[None, start : start + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_empty_video(path: str | Path, *, width: int = 64, height: int = 48) -> Path:
    """A valid container with a video stream that holds no frames.

    Use an ``.avi`` name: the MP4 and Matroska muxers drop or refuse a track without frames.
    """
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        container.start_encoding()
    return path

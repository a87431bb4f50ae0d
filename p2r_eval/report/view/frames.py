"""Thumbnails of the frames a model saw: taken from the frame cache when the run used one,
otherwise sampled again with the run's recorded frame policy (the same sampling function the
run used, so the same frames at the same timestamps).

Thumbnails are small JPEGs (``THUMBNAIL_WIDTH`` px wide) under ``SITE/frames/<key>/``, one
folder per (video file, frame policy); a folder is written once and reused by every sample,
run and later ``p2r-eval view`` that shows the same video with the same policy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from p2r_eval.core.atomic_files import write_atomically
from p2r_eval.core.items import Item
from p2r_eval.media.frame_cache import FrameCache
from p2r_eval.media.requests import load_image, sample_media
from p2r_eval.media.video import FramePolicy, SampledFrames, VideoError

THUMBNAIL_WIDTH = 96
JPEG_QUALITY = 75
FRAMES_DIR = "frames"
MANIFEST = "frames.json"


@dataclass(frozen=True)
class Thumbnail:
    """``path``: relative to the site root; ``timestamp``: seconds from the first frame (None
    for a still image)."""

    path: str
    timestamp: float | None


@dataclass(frozen=True)
class FrameStrip:
    """The thumbnails of one item, or why there are none."""

    thumbnails: tuple[Thumbnail, ...] = ()
    problem: str | None = None


class ThumbnailMaker:
    """Makes (once) and finds the thumbnails of items under ``site_root``."""

    def __init__(self, site_root: Path, frame_cache: Path | None = None) -> None:
        self.site_root = Path(site_root)
        self.frame_cache = FrameCache(frame_cache) if frame_cache else None
        self._strips: dict[str, FrameStrip] = {}

    def strip(self, item: Item, policy: FramePolicy) -> FrameStrip:
        if item.media_type == "none":
            return FrameStrip(problem="a text-only item: no frames")
        if item.media is None:
            return FrameStrip(problem="the record names no media file")
        try:
            key = media_key(item.media, policy, item.frame_folder_fps)
        except OSError as error:
            return FrameStrip(problem=f"{item.media}: {error.strerror or error}")
        if key not in self._strips:
            self._strips[key] = self._load_or_make(key, item, policy)
        return self._strips[key]

    def _load_or_make(self, key: str, item: Item, policy: FramePolicy) -> FrameStrip:
        folder = self.site_root / FRAMES_DIR / key
        manifest = folder / MANIFEST
        if manifest.exists():
            return self._strip_from_manifest(key, json.loads(manifest.read_text()))
        try:
            frames, timestamps = self._frames(item, policy)
        except (VideoError, OSError) as error:
            return FrameStrip(problem=str(error))
        folder.mkdir(parents=True, exist_ok=True)
        for index, frame in enumerate(frames):
            write_atomically(folder / f"{index}.jpg", jpeg_thumbnail(frame), durable=False)
        write_atomically(manifest, json.dumps({"timestamps": timestamps}).encode(), durable=False)
        return self._strip_from_manifest(key, {"timestamps": timestamps})

    def _frames(self, item: Item, policy: FramePolicy) -> tuple[np.ndarray, list[float | None]]:
        assert item.media is not None
        if item.media_type == "image":
            return np.stack([load_image(item.media)]), [None]
        sampled = self._cached(item.media, policy) if item.media_type == "video" else None
        if sampled is None:
            sampled = sample_media(item.media, item.media_type, decoded_size_policy(policy),
                                   frame_folder_fps=item.frame_folder_fps)
        return sampled.frames, [round(float(t), 3) for t in sampled.timestamps]

    def _cached(self, video: Path, policy: FramePolicy) -> SampledFrames | None:
        return self.frame_cache.load(video, policy) if self.frame_cache else None

    def _strip_from_manifest(self, key: str, manifest: dict) -> FrameStrip:
        return FrameStrip(tuple(
            Thumbnail(f"{FRAMES_DIR}/{key}/{index}.jpg", timestamp)
            for index, timestamp in enumerate(manifest["timestamps"])
        ))


def decoded_size_policy(policy: FramePolicy) -> FramePolicy:
    """``policy`` with frames kept at their decoded size: the same frames at the same
    timestamps, without the resize to the model's input size (thumbnails are made small
    anyway, and that resize would load torch)."""
    if getattr(policy, "resize", "processor") == "processor":
        return policy
    return dataclasses.replace(policy, resize="processor")


def media_key(media: Path, policy: FramePolicy, frame_folder_fps: float | None = None) -> str:
    """Names a video file's frames under a policy: the file's resolved path, size and
    modification time (an edited file gets new thumbnails), the policy and the size; for a
    frame folder also its rate, which the thumbnails' timestamps depend on."""
    stat = media.stat()
    rate = () if frame_folder_fps is None else (f"frame_folder_fps={frame_folder_fps}",)
    identity = "\0".join((str(media.resolve()), str(stat.st_size), str(stat.st_mtime_ns),
                          policy.key(), str(THUMBNAIL_WIDTH), *rate))
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


def jpeg_thumbnail(frame: np.ndarray, width: int = THUMBNAIL_WIDTH) -> bytes:
    image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    height = max(1, round(image.height * width / image.width))
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


"""Sampled frames stored once per (video content, frame policy), shared across runs and models.

Layout under the cache folder::

    hashes/<sha256 of path, size, mtime>   the video's content sha256 (so a video is hashed once)
    frames/<content hash>-<policy hash>.npy   uint8 frames (T, H, W, 3)
    frames/<content hash>-<policy hash>.json  indices, timestamps, fps, total frames

Every file is written to a temporary name, fsynced and renamed into place, so concurrent runs
can share the folder: a reader sees a complete entry or none, and two writers of the same entry
write identical bytes. Keys use the content hash, so a renamed or copied video still hits,
and an edited video (new size or mtime) is hashed again.

Nothing read back is trusted: a memo that is not a sha256 is hashed again, and an entry whose
metadata does not parse, names another video or policy, or disagrees with its frames' shape
is a miss (sampled again and rewritten), never another video's frames or a crash. A power loss
on a file system that renames before it writes can leave exactly such files.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from p2r_eval.core.atomic_files import write_atomically
from p2r_eval.core.provenance import file_sha256
from p2r_eval.media.video import FramePolicy, SampledFrames

Sampler = Callable[[Path, FramePolicy], SampledFrames]
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
log = logging.getLogger(__name__)


class DamagedEntry(ValueError):
    """A cache entry that cannot be the frames it is filed under."""


class FrameCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def content_hash(self, video: Path) -> str:
        """sha256 of the video's bytes, memoised by (resolved path, size, mtime)."""
        stat = video.stat()
        identity = f"{video.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
        memo = self.root / "hashes" / hashlib.sha256(identity.encode()).hexdigest()
        if memo.exists():
            remembered = memo.read_bytes().decode("ascii", "replace").strip()
            if SHA256_HEX.fullmatch(remembered):
                return remembered
            log.warning("frame cache: damaged hash memo %s; hashing %s again", memo, video)
        digest = file_sha256(video)
        write_atomically(memo, digest.encode())
        return digest

    def entry_paths(self, video: Path, policy: FramePolicy) -> tuple[Path, Path]:
        policy_hash = hashlib.sha256(policy.key().encode()).hexdigest()[:16]
        stem = self.root / "frames" / f"{self.content_hash(video)}-{policy_hash}"
        return stem.with_suffix(".npy"), stem.with_suffix(".json")

    def load(self, video: Path, policy: FramePolicy) -> SampledFrames | None:
        """The entry of ``video`` under ``policy``; None when there is none or it is damaged."""
        frames_path, meta_path = self.entry_paths(video, policy)
        if not (frames_path.exists() and meta_path.exists()):
            return None
        try:
            return checked_entry(frames_path, meta_path, self.content_hash(video), policy)
        except (DamagedEntry, OSError, ValueError, EOFError) as error:
            log.warning("frame cache: ignoring damaged entry %s (%s)", frames_path, error)
            return None

    def store(self, video: Path, policy: FramePolicy, sampled: SampledFrames) -> None:
        frames_path, meta_path = self.entry_paths(video, policy)
        meta = {
            "indices": list(sampled.indices),
            "timestamps": list(sampled.timestamps),
            "sample_fps": sampled.sample_fps,
            "source_fps": sampled.source_fps,
            "total_frames": sampled.total_frames,
            "policy": policy.as_dict(),
            "policy_key": policy.key(),
            "content_sha256": self.content_hash(video),
            "shape": list(sampled.frames.shape),
            "decoded_size": None if sampled.decoded_size is None else list(sampled.decoded_size),
        }
        write_atomically(frames_path, _npy_bytes(sampled.frames))
        write_atomically(meta_path, json.dumps(meta).encode())

    def get_or_sample(self, video: Path, policy: FramePolicy, sampler: Sampler) -> SampledFrames:
        """The cached frames of ``video`` under ``policy``, sampling and storing them on a miss."""
        cached = self.load(video, policy)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        sampled = sampler(video, policy)
        self.store(video, policy, sampled)
        return sampled


def checked_entry(
    frames_path: Path, meta_path: Path, content_sha256: str, policy: FramePolicy
) -> SampledFrames:
    """An entry read back and checked against what it is filed under; :class:`DamagedEntry`
    (or the reader's own error) when it cannot be those frames."""
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise DamagedEntry("metadata is not an object")
    if meta.get("content_sha256") != content_sha256 or meta.get("policy_key") != policy.key():
        raise DamagedEntry("metadata names another video or frame policy")
    frames = np.load(frames_path, allow_pickle=False)
    indices, timestamps = _int_list(meta, "indices"), _number_list(meta, "timestamps")
    if (frames.dtype != np.uint8 or frames.ndim != 4 or list(frames.shape) != meta.get("shape")
            or not len(indices) == len(timestamps) == frames.shape[0]):
        raise DamagedEntry(f"frames of shape {frames.shape} do not match the metadata")
    return SampledFrames(
        frames=frames,
        indices=tuple(indices),
        timestamps=tuple(timestamps),
        sample_fps=meta["sample_fps"],
        source_fps=meta["source_fps"],
        total_frames=meta["total_frames"],
        decoded_size=_decoded_size(meta, policy),
    )


def _decoded_size(meta: dict[str, Any], policy: FramePolicy) -> tuple[int, int] | None:
    """The entry's decoded frame size; None in an entry written before it was recorded, which
    cannot be one of frames resized to a processor's size (those always record it)."""
    size = meta.get("decoded_size")
    if size is None and policy.processor_size is None:
        return None
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise DamagedEntry("metadata field 'decoded_size' is not a height and a width")
    return size[0], size[1]


def _int_list(meta: dict[str, Any], key: str) -> list[int]:
    values = meta.get(key)
    if not isinstance(values, list) or not all(isinstance(v, int) for v in values):
        raise DamagedEntry(f"metadata field {key!r} is not a list of integers")
    return values


def _number_list(meta: dict[str, Any], key: str) -> list[float]:
    values = meta.get(key)
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
        raise DamagedEntry(f"metadata field {key!r} is not a list of numbers")
    return values


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


"""Sampled frames stored once per (video content, frame policy), shared across runs and models.

Layout under the cache folder::

    hashes/<sha256 of path, size, mtime>   the video's content sha256 (so a video is hashed once)
    frames/<content hash>-<policy hash>.npy   uint8 frames (T, H, W, 3)
    frames/<content hash>-<policy hash>.json  indices, timestamps, fps, total frames

Every file is written to a temporary name and renamed into place, so concurrent runs can
share the folder: a reader sees a complete entry or none, and two writers of the same entry
write identical bytes. Keys use the content hash, so a renamed or copied video still hits,
and an edited video (new size or mtime) is hashed again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from p2r_eval.provenance import file_sha256
from p2r_eval.video import FramePolicy, SampledFrames

Sampler = Callable[[Path, FramePolicy], SampledFrames]


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
            return memo.read_text().strip()
        digest = file_sha256(video)
        _atomic_write(memo, digest.encode())
        return digest

    def entry_paths(self, video: Path, policy: FramePolicy) -> tuple[Path, Path]:
        policy_hash = hashlib.sha256(policy.key().encode()).hexdigest()[:16]
        stem = self.root / "frames" / f"{self.content_hash(video)}-{policy_hash}"
        return stem.with_suffix(".npy"), stem.with_suffix(".json")

    def load(self, video: Path, policy: FramePolicy) -> SampledFrames | None:
        frames_path, meta_path = self.entry_paths(video, policy)
        if not (frames_path.exists() and meta_path.exists()):
            return None
        meta = json.loads(meta_path.read_text())
        return SampledFrames(
            frames=np.load(frames_path),
            indices=tuple(meta["indices"]),
            timestamps=tuple(meta["timestamps"]),
            sample_fps=meta["sample_fps"],
            source_fps=meta["source_fps"],
            total_frames=meta["total_frames"],
        )

    def store(self, video: Path, policy: FramePolicy, sampled: SampledFrames) -> None:
        frames_path, meta_path = self.entry_paths(video, policy)
        meta = {
            "indices": list(sampled.indices),
            "timestamps": list(sampled.timestamps),
            "sample_fps": sampled.sample_fps,
            "source_fps": sampled.source_fps,
            "total_frames": sampled.total_frames,
            "policy": policy.as_dict(),
        }
        _atomic_write(frames_path, _npy_bytes(sampled.frames))
        _atomic_write(meta_path, json.dumps(meta).encode())

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


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

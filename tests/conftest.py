"""Shared fixtures. Media: tiny real videos and frame folders, generated once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from p2r_eval.media import synthetic_media


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo Qwen2.5-VL checkpoint (the training tests' model), built once per session.
    Imported here, not at the top: collecting tests must not pay for importing torch."""
    from p2r_eval.models.demo import ensure_demo_model

    return ensure_demo_model(tmp_path_factory.getbasetemp() / "p2r-cache")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def tiny_video(media_dir: Path) -> Path:
    """90 frames, 64x48, 30 fps, H.264 (or MPEG-4) without B-frames, keyframe every 12."""
    return synthetic_media.write_video(media_dir / "tiny.mp4", seconds=3, gop=12)


@pytest.fixture(scope="session")
def bframe_video(media_dir: Path) -> Path:
    """Like ``tiny_video`` but with up to 3 B-frames in a row (decode order != display order)."""
    return synthetic_media.write_video(
        media_dir / "bframes.mp4", seconds=3, gop=15, b_frames=3, preset="medium"
    )


@pytest.fixture(scope="session")
def vfr_video(media_dir: Path) -> Path:
    """60 frames at irregular times (10 ms to 200 ms apart)."""
    gaps = np.random.default_rng(7).uniform(0.01, 0.2, size=60)
    timestamps = [float(t) for t in np.cumsum(gaps) - gaps[0]]
    return synthetic_media.write_vfr_video(media_dir / "vfr.mp4", timestamps=timestamps)


@pytest.fixture(scope="session")
def frame_folder(media_dir: Path) -> Path:
    """20 lossless PNG frames named 00001.png ... 00020.png."""
    return synthetic_media.write_frame_folder(media_dir / "frames", 20)

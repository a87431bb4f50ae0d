"""Consecutive items on one video are decoded once and share its frames; a run puts the items
on one video next to each other first (:func:`grouped_by_video`)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from p2r_eval.core.items import Item
from p2r_eval.core.prompts import build_prompt
from p2r_eval.media.requests import (
    DecodePool,
    MediaError,
    RequestBuilder,
    grouped_by_video,
    prefetch_requests,
    shared_media_key,
)
from p2r_eval.media.video import FramePolicy, sample_frames

BUILDER = RequestBuilder("p2r", FramePolicy(num_frames=4))


def item(index: int, media: Path, media_type: str = "video") -> Item:
    return Item(task="t", id=str(index), question=f"Question {index}?", options=("A. x", "B. y"),
                answer="A", answer_type="multiple choice", media=media, media_type=media_type)


@pytest.fixture
def two_videos(tiny_video: Path, tmp_path: Path) -> tuple[Path, Path]:
    other = tmp_path / "other.mp4"
    shutil.copy(tiny_video, other)
    return tiny_video, other


def ways(pool_workers: int):
    """The inline way (0) or a decode pool's."""
    if pool_workers == 0:
        return lambda items: list(prefetch_requests(items, BUILDER))
    return lambda items: list(prefetch_requests(items, BUILDER, workers=pool_workers))


@pytest.mark.parametrize("workers", [0, 2])
def test_only_consecutive_items_on_one_video_share_its_frames(two_videos, workers):
    first, second = two_videos
    items = [item(0, first), item(1, first), item(2, second), item(3, first)]
    answers = [request for _, request in ways(workers)(items)]
    assert answers[1].frames is answers[0].frames          # decoded once
    assert answers[2].frames is not answers[1].frames
    assert answers[3].frames is not answers[0].frames      # not consecutive: decoded again
    expected = sample_frames(first, policy=BUILDER.policy).frames
    for request, source in zip(answers, items, strict=True):
        assert request.item_id == source.id and request.prompt == build_prompt(source, "p2r")
        assert np.array_equal(request.frames, expected)
    assert answers[1].fps == answers[0].fps


@pytest.mark.parametrize("workers", [0, 2])
def test_a_failed_shared_video_fails_each_item_by_name(tmp_path, workers):
    missing = tmp_path / "missing.mp4"
    answers = [request for _, request in ways(workers)([item(0, missing), item(1, missing)])]
    assert all(isinstance(answer, MediaError) for answer in answers)
    assert str(answers[0]).startswith("t/0:") and str(answers[1]).startswith("t/1:")


def test_items_without_a_video_to_decode_share_nothing(tiny_video, tmp_path):
    assert shared_media_key(BUILDER, item(0, tiny_video)) == (tiny_video, "video", None)
    assert shared_media_key(BUILDER, item(0, tiny_video, "image")) is None
    text_only = RequestBuilder("p2r", BUILDER.policy, needs_media=False)
    assert shared_media_key(text_only, item(0, tiny_video)) is None


def test_early_decoding_decodes_a_shared_video_once(two_videos):
    first, second = two_videos
    items = [item(0, first), item(1, first), item(2, second)]
    with DecodePool(1) as pool:
        pool.start_early(items, BUILDER)
        deadline = time.monotonic() + 60
        while len(list(pool._folder.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(1)  # a third decoding, if one were started, would be done by now
        assert len(list(pool._folder.iterdir())) == 2
        answers = [request for _, request in prefetch_requests(items, BUILDER, pool=pool)]
    assert answers[1].frames is answers[0].frames


def test_items_on_one_video_are_moved_up_to_its_first_item(two_videos, tmp_path):
    first, second = two_videos
    image = tmp_path / "still.png"
    items = [item(0, second), item(1, first), item(2, image, "image"), item(3, second),
             item(4, first, "none"), item(5, first), item(6, image, "image")]
    order = [grouped.id for grouped in grouped_by_video(items)]
    assert order == ["0", "3", "1", "5", "2", "4", "6"]  # images and text keep their place
    assert grouped_by_video(grouped_by_video(items)) == grouped_by_video(items)

"""Frames resized where they are decoded give the processor's own inputs, bit for bit.

The oracle is transformers' Qwen2-VL video processor itself: its size rule (run on shapes
alone) and its preparation of frames given at their decoded size.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from p2r_eval.core.items import Item
from p2r_eval.core.request import Request
from p2r_eval.media import synthetic_media
from p2r_eval.media.requests import RequestBuilder
from p2r_eval.media.video import FramePolicy, ProcessorFrameSize, resize_frames_as_processor
from p2r_eval.models.base import BackendError, DecodingSettings
from p2r_eval.models.frame_size import (
    check_presized,
    decoding_frame_size,
    presize_check_failure,
    processor_video_size,
    size_rule_of,
)
from p2r_eval.models.hf import HFBackend

MAX_PIXELS = 200_704


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> HFBackend:
    return HFBackend(model_dir, decoding=DecodingSettings(max_new_tokens=1),
                     max_pixels=MAX_PIXELS)


@pytest.fixture(scope="module")
def wide_video(media_dir: Path) -> Path:
    """A 1 s 640x360 clip: larger than MAX_PIXELS allows, so the processor shrinks it."""
    return synthetic_media.write_video(media_dir / "wide.mp4", seconds=1, width=640,
                                       height=360)


def video_item(media: Path) -> Item:
    return Item(task="t", id="v1", question="What moves?", options=("A. x", "B. y"),
                answer="A", answer_type="multiple choice", media=media, media_type="video")


def test_the_demo_models_processor_resizes_where_frames_are_decoded(backend: HFBackend) -> None:
    assert backend.frame_size is not None
    assert backend.frame_size.max_pixels == MAX_PIXELS


@pytest.mark.parametrize("cap_pixels_per_frame", [False, True])
@pytest.mark.parametrize("bounds", [(100_352, 602_112), (3_136, 3_136), (3_136, 12_544)])
def test_the_size_rule_is_the_processors_own(
    backend: HFBackend, bounds: tuple[int, int], cap_pixels_per_frame: bool
) -> None:
    video_processor = copy.copy(backend.processor.video_processor)
    video_processor.size = copy.copy(video_processor.size)
    video_processor.size.shortest_edge, video_processor.size.longest_edge = bounds
    video_processor.cap_pixels_per_frame = cap_pixels_per_frame
    video_processor.max_video_tokens = 2_000  # a budget small enough to bind at 64 frames
    rule = size_rule_of(video_processor)
    assert rule is not None
    sides = (10, 27, 28, 29, 48, 97, 180, 480, 854, 1080, 2160, 4000)
    for (height, width), frames in itertools.product(itertools.product(sides, sides), (2, 64)):
        if max(height, width) / min(height, width) > 200:
            continue
        expected = processor_video_size(video_processor, frames, height, width)
        assert rule.size(height, width, frames) == expected, (height, width, frames)


def test_a_size_the_processor_would_change_again_is_left_to_it() -> None:
    rule = ProcessorFrameSize(factor=28, min_pixels=3_136, max_pixels=3_136)
    assert rule.size(38, 59, 2) == (56, 84)        # grown past the maximum
    assert rule.size(56, 84, 2) == (28, 56)        # which the processor would shrink again
    assert rule.presize(38, 59, 2) is None
    assert rule.presize(56, 56, 2) is None          # already at its size
    assert rule.presize(112, 112, 2) == (56, 56)


def test_only_videos_over_the_byte_threshold_are_resized_where_decoded() -> None:
    four_frames = 4 * 112 * 112 * 3
    rule = ProcessorFrameSize(factor=28, min_pixels=3_136, max_pixels=3_136,
                              min_decoded_bytes=four_frames)
    assert rule.where_decoded(112, 112, 4) is None
    assert rule.where_decoded(112, 112, 5) == (56, 56)
    assert rule.presize(112, 112, 4) == (56, 56)  # the size rule itself is the processor's


@pytest.mark.parametrize("shape", [(4, 180, 320), (3, 20, 37), (2, 401, 97), (5, 600, 500)])
def test_presized_frames_give_the_processors_own_inputs(
    backend: HFBackend, shape: tuple[int, int, int]
) -> None:
    assert backend.frame_size is not None
    frames = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    target = backend.frame_size.presize(shape[1], shape[2], shape[0])
    assert target is not None
    decoded = Request("t", "a", "What happens?", frames=frames, fps=2.0)
    presized = Request("t", "a", "What happens?", frames=resize_frames_as_processor(frames, target),
                       fps=2.0, presized_from=shape[1:])
    ours = backend.processor_outputs([presized])
    theirs = backend.processor_outputs([decoded])
    for name in ("pixel_values_videos", "video_grid_thw", "input_ids"):
        assert torch.equal(ours[name], theirs[name]), name


def test_a_run_decodes_frames_at_the_processors_size_with_the_same_inputs(
    backend: HFBackend, wide_video: Path
) -> None:
    policy = FramePolicy(num_frames=6, max_pixels=MAX_PIXELS)
    at_decoded_size = RequestBuilder("p2r", policy)(video_item(wide_video))
    resizing_any_video = dataclasses.replace(backend.frame_size, min_decoded_bytes=0)
    presized = RequestBuilder("p2r", policy.resized_where_decoded(resizing_any_video))(
        video_item(wide_video))
    assert at_decoded_size.frames is not None and presized.frames is not None
    assert at_decoded_size.frames.shape == (6, 360, 640, 3)
    assert presized.frames.shape == (6, 336, 588, 3) and presized.presized_from == (360, 640)
    ours = backend.processor_outputs([presized])
    theirs = backend.processor_outputs([at_decoded_size])
    assert torch.equal(ours["pixel_values_videos"], theirs["pixel_values_videos"])
    assert torch.equal(ours["video_grid_thw"], theirs["video_grid_thw"])


def test_frames_at_another_size_stop_their_item(backend: HFBackend) -> None:
    frames = np.zeros((2, 56, 56, 3), dtype=np.uint8)
    wrong = Request("vsibench", "item-7", "Where?", frames=frames, fps=2.0,
                    presized_from=(480, 854))
    with pytest.raises(BackendError, match=r"vsibench/item-7: .*854x480 to 56x56"):
        check_presized(backend.processor, wrong)
    with pytest.raises(BackendError, match="vsibench/item-7"):
        backend.processor_outputs([wrong])


def test_a_processor_that_resizes_otherwise_keeps_its_frames(backend: HFBackend) -> None:
    processor = copy.copy(backend.processor)
    processor.video_processor = copy.copy(backend.processor.video_processor)
    processor.video_processor.resample = 2  # bilinear: not p2r's resize
    assert decoding_frame_size(processor) is None
    processor.video_processor.resample = 3
    processor.video_processor.do_resize = False
    assert decoding_frame_size(processor) is None


def test_the_load_check_finds_a_size_rule_that_differs(backend: HFBackend) -> None:
    video_processor = backend.processor.video_processor
    rule = size_rule_of(video_processor)
    assert rule is not None and presize_check_failure(video_processor, rule) is None
    wrong = ProcessorFrameSize(factor=rule.factor, min_pixels=rule.min_pixels,
                               max_pixels=rule.max_pixels // 2)
    failure = presize_check_failure(video_processor, wrong)
    assert failure is not None and "differs from p2r's" in failure

"""Requests from items: decoding ahead in worker processes, and the frame cache."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from p2r_eval.core.items import Item
from p2r_eval.media.frame_cache import FrameCache
from p2r_eval.media.input_policies import named_frame_policy
from p2r_eval.media.requests import MediaError, RequestBuilder, prefetch_requests
from p2r_eval.media.video import (
    RESIZE_WHERE_DECODED_FROM_BYTES,
    FramePolicy,
    ProcessorFrameSize,
    resize_frames_as_processor,
    sample_frames,
)

POLICY = FramePolicy(num_frames=4)


def item(index, media, media_type="video"):
    return Item(task="t", id=str(index), question="What moves?", options=("A. x", "B. y"),
                answer="A", answer_type="multiple choice", media=media, media_type=media_type)


def test_workers_give_the_inline_requests_in_order_with_per_item_errors(tiny_video, tmp_path):
    items = [item(0, tiny_video), item(1, tmp_path / "missing.mp4"), item(2, tiny_video),
             item(3, None, "none")]
    builder = RequestBuilder("p2r", POLICY)
    inline = list(prefetch_requests(items, builder, workers=0))
    pooled = list(prefetch_requests(items, builder, workers=2, depth=2))
    assert [i.id for i, _ in pooled] == ["0", "1", "2", "3"]
    assert isinstance(pooled[1][1], MediaError) and "missing.mp4" in str(pooled[1][1])
    for (_, expected), (_, got) in zip(inline, pooled, strict=True):
        if isinstance(expected, MediaError):
            continue
        assert got.prompt == expected.prompt
        if expected.frames is None:
            assert got.frames is None
        else:
            assert np.array_equal(got.frames, expected.frames) and got.fps == expected.fps


def test_frame_cache_hit_returns_the_decoded_frames(tiny_video, tmp_path):
    cache = FrameCache(tmp_path / "cache")
    decoded = sample_frames(tiny_video, policy=POLICY)
    first = cache.get_or_sample(tiny_video, POLICY, lambda p, pol: sample_frames(p, policy=pol))
    second = cache.get_or_sample(tiny_video, POLICY, lambda p, pol: 1 / 0)
    assert (cache.misses, cache.hits) == (1, 1)
    for sampled in (first, second):
        assert np.array_equal(sampled.frames, decoded.frames)
        assert sampled.indices == decoded.indices and sampled.sample_fps == decoded.sample_fps


def test_frame_cache_keys_on_content_and_policy(tiny_video, tmp_path):
    cache = FrameCache(tmp_path / "cache")

    def sampler(path, policy):
        return sample_frames(path, policy=policy)

    cache.get_or_sample(tiny_video, POLICY, sampler)
    copy = tmp_path / "renamed.mp4"
    shutil.copy(tiny_video, copy)
    cache.get_or_sample(copy, POLICY, sampler)
    assert cache.hits == 1, "a copy of the same video is the same content"
    cache.get_or_sample(copy, FramePolicy(num_frames=3), sampler)
    assert cache.misses == 2, "another frame policy is another entry"
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    os.utime(copy, ns=(1, 1))
    assert cache.content_hash(copy) != cache.content_hash(tiny_video)


def test_a_video_over_the_decode_time_budget_is_its_items_error(tiny_video):
    builder = RequestBuilder("p2r", POLICY, decode_timeout_s=1e-9)
    ((_, result),) = prefetch_requests([item(0, tiny_video)], builder)
    assert isinstance(result, MediaError)
    assert tiny_video.name in str(result) and "time budget" in str(result)


PRESIZED = POLICY.resized_where_decoded(
    ProcessorFrameSize(factor=28, min_pixels=3_136, max_pixels=12_544, min_decoded_bytes=0))
"""POLICY with the 64x48 frames resized after decoding to a processor's 56x56 (a processor size
resizing videos of any size where they are decoded)."""


def test_frames_resized_where_decoded_are_the_processors_resize_of_the_decoded_ones(tiny_video):
    decoded = sample_frames(tiny_video, policy=POLICY)
    presized = sample_frames(tiny_video, policy=PRESIZED)
    assert decoded.frames.shape[1:3] == decoded.decoded_size == presized.decoded_size == (48, 64)
    assert presized.frames.shape[1:3] == (56, 56)
    assert np.array_equal(presized.frames, resize_frames_as_processor(decoded.frames, (56, 56)))
    assert presized.indices == decoded.indices


@pytest.mark.parametrize(("min_decoded_bytes", "expected"), [
    (RESIZE_WHERE_DECODED_FROM_BYTES, "(4, 48, 64, 3) torch imported: False"),
    (0, "(4, 56, 56, 3) torch imported: True"),
])
def test_a_small_video_is_left_to_the_processor_and_its_decoding_imports_no_torch(
    tiny_video, min_decoded_bytes, expected
):
    policy = (f"FramePolicy(num_frames=4).resized_where_decoded(ProcessorFrameSize("
              f"factor=28, min_pixels=3_136, max_pixels=12_544, "
              f"min_decoded_bytes={min_decoded_bytes}))")
    code = ("import sys\n"
            "from p2r_eval.media.video import FramePolicy, ProcessorFrameSize, sample_frames\n"
            f"sampled = sample_frames({str(tiny_video)!r}, policy={policy})\n"
            "print(sampled.frames.shape, 'torch imported:', 'torch' in sys.modules)\n")
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == expected


def test_resizing_where_decoded_is_cached_apart_and_not_recorded(tiny_video, tmp_path):
    assert PRESIZED.as_dict() == POLICY.as_dict()
    assert PRESIZED.key() != POLICY.key()
    assert named_frame_policy("video-r1").resized_where_decoded(PRESIZED.processor_size) == (
        named_frame_policy("video-r1"))
    cache = FrameCache(tmp_path / "cache")

    def sampler(path, policy):
        return sample_frames(path, policy=policy)

    cache.get_or_sample(tiny_video, POLICY, sampler)
    stored = cache.get_or_sample(tiny_video, PRESIZED, sampler)
    assert cache.misses == 2
    again = cache.get_or_sample(tiny_video, PRESIZED, lambda p, pol: 1 / 0)
    assert again.decoded_size == (48, 64) and np.array_equal(again.frames, stored.frames)
    _, meta_path = cache.entry_paths(tiny_video, PRESIZED)
    meta = json.loads(meta_path.read_text())
    del meta["decoded_size"]
    meta_path.write_text(json.dumps(meta))
    assert cache.load(tiny_video, PRESIZED) is None, "resized frames without their decoded size"

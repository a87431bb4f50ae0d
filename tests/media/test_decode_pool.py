"""A run's decode pool: items started before the model loads are decoded once, then used."""

import os
import shutil
import time

import numpy as np

from p2r_eval.core.items import Item
from p2r_eval.core.request import Request
from p2r_eval.media import requests as media
from p2r_eval.media.input_policies import named_frame_policy
from p2r_eval.media.requests import (
    DECODE_WORKER_NICENESS,
    SHARED_MEMORY,
    DecodePool,
    MediaError,
    RequestBuilder,
    SharedFrames,
    prefetch_requests,
    too_large_to_decode_early,
)
from p2r_eval.media.video import (
    FramePolicy,
    ProcessorFrameSize,
    decoded_frames_bytes,
    sample_frames,
)

BUILDER = RequestBuilder("p2r", FramePolicy(num_frames=4))
PRESIZING = RequestBuilder("p2r", BUILDER.policy.resized_where_decoded(
    ProcessorFrameSize(factor=28, min_pixels=3_136, max_pixels=12_544, min_decoded_bytes=0)))
"""BUILDER once the model's processor is known: 64x48 frames resized to 56x56 after decoding
(a processor size resizing videos of any size where they are decoded)."""


def item(index, media):
    return Item(task="t", id=str(index), question="What moves?", options=("A. x", "B. y"),
                answer="A", answer_type="multiple choice", media=media, media_type="video")


def test_an_item_started_early_is_not_decoded_again(tiny_video, tmp_path):
    video = tmp_path / "early.mp4"
    shutil.copy(tiny_video, video)
    early, other = item(0, video), item(1, tiny_video)
    with DecodePool(1) as pool:
        pool.start_early([early], BUILDER)
        pool.submit(BUILDER, other).result()  # one worker, in order: the early one is done
        video.unlink()
        ((_, request),) = prefetch_requests([early], BUILDER, pool=pool)
        expected = sample_frames(tiny_video, policy=BUILDER.policy)
        assert np.array_equal(request.frames, expected.frames)
        ((_, again),) = prefetch_requests([early], BUILDER, pool=pool)
    assert isinstance(again, MediaError) and "early.mp4" in str(again)


def test_a_worker_resizes_frames_to_the_processors_size(tiny_video):
    with DecodePool(1) as pool:
        ((_, request),) = prefetch_requests([item(0, tiny_video)], PRESIZING, pool=pool)
    assert request.frames.shape == (4, 56, 56, 3) and request.presized_from == (48, 64)


def test_an_item_started_before_the_processor_was_known_is_used_at_its_decoded_size(
    tiny_video, tmp_path
):
    video = tmp_path / "early.mp4"
    shutil.copy(tiny_video, video)
    early, other = item(0, video), item(1, tiny_video)
    with DecodePool(1) as pool:
        pool.start_early([early], BUILDER)
        pool.submit(BUILDER, other).result()
        video.unlink()  # decoding it again would fail
        ((_, request),) = prefetch_requests([early], PRESIZING, pool=pool)
    assert request.frames.shape == (4, 48, 64, 3) and request.presized_from is None


def test_a_video_too_large_to_hold_is_not_decoded_before_the_processor_is_known(
    tiny_video, tmp_path, monkeypatch
):
    four_frames = 4 * 48 * 64 * 3
    assert decoded_frames_bytes(tiny_video, BUILDER.policy) == four_frames
    assert decoded_frames_bytes(tmp_path / "missing.mp4", BUILDER.policy) is None
    monkeypatch.setattr(media, "RESIZE_WHERE_DECODED_FROM_BYTES", four_frames - 1)
    video = tmp_path / "large.mp4"
    shutil.copy(tiny_video, video)
    large, other = item(0, video), item(1, tiny_video)
    assert too_large_to_decode_early(BUILDER, large)
    assert not too_large_to_decode_early(  # resized where decoded by its own rule anyway
        RequestBuilder("p2r", named_frame_policy("video-r1")), large)
    with DecodePool(1) as pool:
        pool.start_early([large, other], BUILDER)
        pool.submit(BUILDER, other).result()
        video.unlink()  # only decoding it now can fail
        ((_, request),) = prefetch_requests([large], BUILDER, pool=pool)
    assert isinstance(request, MediaError) and "large.mp4" in str(request)


def test_a_request_started_with_other_settings_is_not_used(tiny_video, tmp_path):
    video = tmp_path / "early.mp4"
    shutil.copy(tiny_video, video)
    other_builder = RequestBuilder("p2r", FramePolicy(num_frames=3))
    with DecodePool(1) as pool:
        pool.start_early([item(0, video)], other_builder)
        pool.submit(BUILDER, item(1, tiny_video)).result()
        video.unlink()
        ((_, request),) = prefetch_requests([item(0, video)], BUILDER, pool=pool)
    assert isinstance(request, MediaError)


def test_a_pool_gives_the_inline_requests_in_order_across_calls(tiny_video, tmp_path):
    items = [item(0, tiny_video), item(1, tmp_path / "missing.mp4"), item(2, tiny_video)]
    inline = list(prefetch_requests(items, BUILDER))
    with DecodePool(2) as pool:
        pool.start_early(items[:1], BUILDER)
        pooled = list(prefetch_requests(items[:2], BUILDER, pool=pool, depth=1))
        pooled += list(prefetch_requests(items[2:], BUILDER, pool=pool))
    assert [i.id for i, _ in pooled] == ["0", "1", "2"]
    assert isinstance(pooled[1][1], MediaError)
    for index in (0, 2):
        assert np.array_equal(pooled[index][1].frames, inline[index][1].frames)


def test_frames_come_through_the_pools_shared_memory_folder_and_none_are_left(tiny_video):
    items = [item(index, tiny_video) for index in range(3)]
    expected = sample_frames(tiny_video, policy=BUILDER.policy).frames
    with DecodePool(1) as pool:
        folder = pool._folder
        assert folder is not None and folder.parent == SHARED_MEMORY
        pool.start_early(items[2:], BUILDER)  # never asked for: its file stays until close
        answer = pool.submit(BUILDER, items[0]).result()
        assert isinstance(answer, SharedFrames) and answer.path.parent == folder
        request = pool.request(answer)
        assert not answer.path.exists()
        assert np.array_equal(request.frames, expected) and request.frames.flags.writeable
        ((_, pooled),) = prefetch_requests(items[1:2], BUILDER, pool=pool)
        assert np.array_equal(pooled.frames, expected)
    assert not folder.exists()


def test_without_shared_memory_frames_come_through_the_pipe(tiny_video, tmp_path, monkeypatch):
    monkeypatch.setattr(media, "SHARED_MEMORY", tmp_path / "no-such-folder")
    expected = sample_frames(tiny_video, policy=BUILDER.policy).frames
    with DecodePool(1) as pool:
        answer = pool.submit(BUILDER, item(0, tiny_video)).result()
    assert isinstance(answer, Request) and np.array_equal(answer.frames, expected)
    request = BUILDER(item(0, tiny_video))
    assert media._shared(request, tmp_path / "removed-folder") is request


def shared_files(pool: DecodePool, count: int, timeout_s: float = 60) -> int:
    """How many frame files the pool's workers have left, once ``count`` are there (or the
    time is up)."""
    deadline = time.monotonic() + timeout_s
    while len(list(pool._folder.iterdir())) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(list(pool._folder.iterdir()))


def test_early_decoding_goes_on_item_after_item_while_nothing_is_asked(tiny_video, tmp_path):
    videos = [tmp_path / f"{index}.mp4" for index in range(4)]
    for video in videos:
        shutil.copy(tiny_video, video)
    items = [item(index, video) for index, video in enumerate(videos)]
    with DecodePool(1) as pool:
        pool.start_early(items, BUILDER)
        assert shared_files(pool, 4) == 4
        for video in videos:
            video.unlink()  # all four were decoded before the run asked for any
        pooled = list(prefetch_requests(items, BUILDER, pool=pool))
    expected = sample_frames(tiny_video, policy=BUILDER.policy).frames
    assert all(np.array_equal(request.frames, expected) for _, request in pooled)


def test_early_decoding_stops_at_its_byte_budget(tiny_video):
    items = [item(index, tiny_video) for index in range(3)]
    with DecodePool(1) as pool:
        pool.start_early(items, BUILDER, budget_bytes=1)
        assert shared_files(pool, 1) == 1
        time.sleep(1)  # a second item, if one were started, would be done by now
        assert shared_files(pool, 1) == 1


def test_the_runs_first_request_ends_early_decoding(tiny_video):
    items = [item(index, tiny_video) for index in range(4)]
    with DecodePool(1) as pool:
        pool.start_early(items[:3], BUILDER)  # the worker is still starting: item 0 waits
        pool.submit(BUILDER, items[3]).result()
        time.sleep(1)
        assert shared_files(pool, 2) == 2  # items 0 and 3; 1 and 2 were never started


def items_on_own_videos(video, folder, count):
    """``count`` items, each on its own copy of ``video`` (so none shares another's frames)."""
    copies = [folder / f"{index}.mp4" for index in range(count)]
    for copy in copies:
        shutil.copy(video, copy)
    return [item(index, copy) for index, copy in enumerate(copies)]


def test_items_after_the_early_ones_start_decoding_when_the_first_is_taken(tiny_video, tmp_path):
    items = items_on_own_videos(tiny_video, tmp_path, 5)
    with DecodePool(1) as pool:
        pool.start_early(items[:3], BUILDER)
        assert shared_files(pool, 3) == 3
        stream = prefetch_requests(items, BUILDER, pool=pool, depth=1)
        first_item, _ = next(stream)  # takes item 0's file; item 3 starts decoding
        assert first_item.id == "0"
        assert shared_files(pool, 3) == 3  # items 1, 2 and 3 wait while the model works on 0
        assert [i.id for i, _ in stream] == ["1", "2", "3", "4"]


def test_decoded_frames_waiting_stay_within_the_ready_budget(tiny_video, tmp_path):
    items = items_on_own_videos(tiny_video, tmp_path, 4)
    with DecodePool(1) as pool:
        pool.start_early(items[:2], BUILDER)
        assert shared_files(pool, 2) == 2
        stream = media._bounded_map(pool, BUILDER, items, depth=2, ready_budget=1)
        next(stream)  # items 0 and 1 are ready: over the budget, nothing more starts
        time.sleep(1)  # a third item, if one were started, would be done by now
        assert shared_files(pool, 1) == 1
        assert [i.id for i, _ in stream] == ["1", "2", "3"]


def test_decode_workers_run_at_a_lower_cpu_priority_than_the_run(tiny_video):
    with DecodePool(1) as pool:
        pool.submit(BUILDER, item(0, tiny_video)).result()
        (worker,) = pool._executor._processes
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, worker) == min(19, own + DECODE_WORKER_NICENESS)

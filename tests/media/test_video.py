"""The frame sampler on real (synthetic, tiny) videos: identity, sampling rules, errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from p2r_eval.media import synthetic_media, video
from p2r_eval.media.video import (
    DECODERS,
    FramePolicy,
    VideoEmptyError,
    VideoError,
    VideoNotFoundError,
    VideoTimeoutError,
    VideoTruncatedError,
    VideoUnreadableError,
    load_frame_folder,
    sample_frames,
    uniform_indices,
)

TINY_SIZE, TINY_SECONDS, TINY_FPS = (64, 48), 3, 30  # as tests/conftest.py writes tiny videos
TINY_FRAMES = TINY_SECONDS * TINY_FPS


def sequential_decode(path: Path) -> np.ndarray:
    """Every frame, in display order, by the plainest PyAV loop."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.fixture(scope="module")
def more_videos(media_dir: Path) -> dict[str, Path]:
    """Other containers and codecs: MPEG-4 Part 2 with B-frames in AVI, H.264 in Matroska."""
    return {
        "mpeg4-avi": synthetic_media.write_video(
            media_dir / "mpeg4.avi", seconds=2, gop=9, b_frames=2, codec="mpeg4"
        ),
        "h264-mkv": synthetic_media.write_video(
            media_dir / "bframes.mkv", seconds=2, gop=10, b_frames=2, preset="medium"
        ),
    }


def assert_matches_sequential_decode(path: Path, policy: FramePolicy) -> None:
    sampled = sample_frames(path, policy=policy)
    reference = sequential_decode(path)
    assert sampled.total_frames == len(reference)
    assert sampled.frames.dtype == np.uint8
    np.testing.assert_array_equal(sampled.frames, reference[list(sampled.indices)])
    drawn = [synthetic_media.read_frame_number(frame) for frame in sampled.frames]
    assert drawn == list(sampled.indices)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("num_frames", [7, 32, 120])
@pytest.mark.parametrize("clip", ["tiny_video", "bframe_video", "vfr_video"])
def test_frames_are_pixel_identical_to_a_sequential_decode(clip, num_frames, decoder, request):
    path = request.getfixturevalue(clip)
    assert_matches_sequential_decode(path, FramePolicy(num_frames=num_frames, decoder=decoder))


@pytest.mark.parametrize("name", ["mpeg4-avi", "h264-mkv"])
def test_other_containers_and_codecs_give_identical_frames(more_videos, name):
    assert_matches_sequential_decode(more_videos[name], FramePolicy(num_frames=16))


@pytest.mark.parametrize("cores", [1, 3, 16])
@pytest.mark.parametrize("clip", ["tiny_video", "bframe_video"])
def test_any_number_of_decode_workers_gives_identical_frames(clip, cores, request, monkeypatch):
    monkeypatch.setattr(video, "usable_cores", lambda: cores)
    assert_matches_sequential_decode(request.getfixturevalue(clip), FramePolicy(num_frames=32))


def test_a_seek_that_lands_past_the_target_falls_back_to_decoding_from_the_start(
    bframe_video, monkeypatch
):
    """Demuxers that index by another timestamp than pts may seek one keyframe too far."""
    seek = video._FrameWalker.seek_to_keyframe

    def seek_one_keyframe_too_far(walker, keyframe):
        later = [k for k in walker.index.keyframes if k > keyframe]
        seek(walker, later[0] if later else keyframe)

    monkeypatch.setattr(video._FrameWalker, "seek_to_keyframe", seek_one_keyframe_too_far)
    assert_matches_sequential_decode(bframe_video, FramePolicy(num_frames=32))


def write_pts_offset_video(path: Path) -> Path:
    """No B-frames, but every pts one frame after its dts: the MP4 index (dts) misleads."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=TINY_FPS)
        stream.width, stream.height, stream.pix_fmt = (*TINY_SIZE, "yuv420p")
        stream.codec_context.gop_size = 10

        def mux(packets: list[av.Packet]) -> None:
            for packet in packets:
                packet.pts = packet.dts + 1
                container.mux(packet)

        for index in range(60):
            frame = synthetic_media.render_frame(index, *TINY_SIZE)
            mux(stream.encode(av.VideoFrame.from_ndarray(frame, "rgb24")))
        mux(stream.encode(None))
    return path


def test_an_index_that_disagrees_with_decoded_timestamps_is_not_trusted(tmp_path):
    path = write_pts_offset_video(tmp_path / "pts_offset.mp4")
    assert_matches_sequential_decode(path, FramePolicy(num_frames=16))


def test_sampled_frames_describe_the_sample(tiny_video):
    sampled = sample_frames(tiny_video, 32)
    width, height = TINY_SIZE
    assert sampled.frames.shape == (32, height, width, 3)
    assert sampled.indices == tuple(uniform_indices(TINY_FRAMES, 32))
    assert sampled.total_frames == TINY_FRAMES
    assert sampled.source_fps == pytest.approx(TINY_FPS)
    assert sampled.sample_fps == pytest.approx(32 / TINY_SECONDS)
    assert sampled.timestamps == pytest.approx([i / TINY_FPS for i in sampled.indices])


def test_variable_frame_rate_timestamps_follow_the_file(vfr_video):
    sampled = sample_frames(vfr_video, 8)
    with av.open(str(vfr_video)) as container:
        stream = container.streams.video[0]
        seconds = [float(f.pts * stream.time_base) for f in container.decode(stream)]
    expected = [seconds[i] - seconds[0] for i in sampled.indices]
    assert sampled.timestamps == pytest.approx(expected, abs=1e-3)


def test_uniform_indices_follow_video_r1():
    indices = uniform_indices(100, 32)
    assert len(indices) == 32
    assert indices[0] == 0 and indices[-1] == 99
    assert indices[:6] == [0, 3, 6, 10, 13, 16]
    assert uniform_indices(3, 8) == [0, 0, 1, 1, 1, 1, 2, 2]  # more frames than the video
    assert uniform_indices(1, 4) == [0, 0, 0, 0]
    assert uniform_indices(50, 1) == [0]
    assert uniform_indices(5, 5) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        uniform_indices(0, 4)
    with pytest.raises(ValueError):
        uniform_indices(10, 0)


@settings(max_examples=300, deadline=None)
@given(total=st.integers(1, 3_000_000), n=st.integers(1, 1024))
def test_uniform_indices_equal_torch_linspace_round(total, n):
    torch = pytest.importorskip("torch")
    assert uniform_indices(total, n) == torch.linspace(0, total - 1, n).round().long().tolist()


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (FramePolicy(fps=2.0), 6),  # 3 s x 2 fps
        (FramePolicy(fps=0.5), 4),  # round(1.5) = 2, raised to min_frames
        (FramePolicy(fps=10.0, max_frames=8), 8),
        (FramePolicy(fps=100.0), TINY_FRAMES),  # never more than the video has
        (FramePolicy(fps=100.0, min_frames=120, max_frames=200), 120),  # min_frames wins
        (FramePolicy(num_frames=5, fps=None), 5),
    ],
)
def test_fps_policy_frame_count(tiny_video, policy, expected):
    sampled = sample_frames(tiny_video, policy=policy)
    assert len(sampled.frames) == expected
    assert sampled.indices == tuple(uniform_indices(TINY_FRAMES, expected))
    assert sampled.sample_fps == pytest.approx(expected / TINY_SECONDS)


def test_policy_overrides_num_frames(tiny_video):
    assert len(sample_frames(tiny_video, 32, policy=FramePolicy(num_frames=4)).frames) == 4


def test_policy_key_and_record():
    policy = FramePolicy()
    assert policy.key() == "frames=32;max_pixels=200704;decoder=pyav-keyframe"
    assert FramePolicy(fps=2.0).key() == (
        "fps=2,min=4,max=768;max_pixels=200704;decoder=pyav-keyframe"
    )
    assert FramePolicy(**policy.as_dict()) == policy
    assert len({FramePolicy(num_frames=16).key(), policy.key(), FramePolicy(fps=1).key()}) == 3


@pytest.mark.parametrize(
    "kwargs",
    [{"num_frames": 0}, {"fps": 0.0}, {"fps": -1.0}, {"min_frames": 10, "max_frames": 5},
     {"min_frames": 0}, {"max_pixels": 0}, {"decoder": "decord"}],
)
def test_invalid_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        FramePolicy(**kwargs)


def assert_video_error(error_type: type[VideoError], path: Path, **kwargs) -> VideoError:
    with pytest.raises(error_type) as caught:
        sample_frames(path, **kwargs)
    assert path.name in str(caught.value)
    assert caught.value.path == path
    return caught.value


def test_missing_video(tmp_path):
    assert_video_error(VideoNotFoundError, tmp_path / "missing_clip.mp4")


def test_video_errors_survive_pickling(tmp_path):
    error = VideoTruncatedError(tmp_path / "clip.mp4", "header promises 90 frames, file holds 45")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is VideoTruncatedError
    assert (copy.path, copy.reason, str(copy)) == (error.path, error.reason, str(error))


def test_zero_byte_video(tmp_path):
    assert_video_error(VideoEmptyError, synthetic_media.write_zero_byte_file(tmp_path / "z.mp4"))


def test_video_stream_without_frames(tmp_path):
    assert_video_error(VideoEmptyError, synthetic_media.write_empty_video(tmp_path / "e.avi"))


def test_text_file_named_mp4(tmp_path):
    assert_video_error(VideoUnreadableError, synthetic_media.write_text_file(tmp_path / "t.mp4"))


def test_audio_only_file(tmp_path):
    path = synthetic_media.write_audio_only(tmp_path / "speech_only.mp4")
    assert "no video stream" in str(assert_video_error(VideoUnreadableError, path))


def test_folder_passed_as_video(tmp_path):
    assert_video_error(VideoUnreadableError, tmp_path)


def test_truncated_video_with_index_first(tmp_path):
    source = synthetic_media.write_video(tmp_path / "whole.mp4", seconds=2, faststart=True)
    cut = synthetic_media.write_truncated_copy(source, tmp_path / "cut_short.mp4", keep=0.6)
    assert_video_error(VideoTruncatedError, cut)
    assert_video_error(VideoTruncatedError, cut, policy=FramePolicy(decoder="pyav-sequential"))


def test_truncated_matroska_video(tmp_path, more_videos):
    """Matroska states no frame count, only a duration the remaining frames fall short of."""
    cut = synthetic_media.write_truncated_copy(more_videos["h264-mkv"], tmp_path / "cut.mkv", 0.4)
    assert_video_error(VideoTruncatedError, cut)


def test_truncated_video_with_index_last_is_unreadable(tmp_path, tiny_video):
    """An MP4 cut before its trailing index has nothing left that says it is a video."""
    cut = synthetic_media.write_truncated_copy(tiny_video, tmp_path / "cut_no_index.mp4", 0.6)
    assert_video_error(VideoUnreadableError, cut)


def test_corrupted_video_data(tmp_path, tiny_video):
    broken = synthetic_media.write_corrupted_copy(tiny_video, tmp_path / "garbled.mp4")
    assert "corrupt" in str(assert_video_error(VideoUnreadableError, broken))


def test_decoding_past_the_time_budget(tiny_video):
    assert_video_error(VideoTimeoutError, tiny_video, timeout_s=1e-9)


def test_frame_folder_is_sampled_like_a_video(frame_folder):
    sampled = load_frame_folder(frame_folder, FramePolicy(num_frames=8), source_fps=3.0)
    assert sampled.indices == tuple(uniform_indices(20, 8))
    expected = [synthetic_media.render_frame(i, *TINY_SIZE) for i in sampled.indices]
    np.testing.assert_array_equal(sampled.frames, np.stack(expected))
    assert sampled.total_frames == 20
    assert sampled.source_fps == 3.0
    assert sampled.timestamps == pytest.approx([i / 3 for i in sampled.indices])
    assert sampled.sample_fps == pytest.approx(8 * 3 / 20)


def test_frame_folder_fps_policy_uses_the_folder_rate(frame_folder):
    sampled = load_frame_folder(frame_folder, FramePolicy(fps=1.0), source_fps=2.0)
    assert len(sampled.frames) == 10  # 20 frames at 2 fps = 10 s


def test_frame_folder_orders_numbers_naturally(tmp_path):
    folder = synthetic_media.write_frame_folder(tmp_path / "f", 12, name_pattern="img_{index}")
    sampled = load_frame_folder(folder, FramePolicy(num_frames=12), source_fps=3.0)
    assert [synthetic_media.read_frame_number(f) for f in sampled.frames] == list(range(12))


def test_frame_folder_of_jpegs(tmp_path):
    folder = synthetic_media.write_frame_folder(tmp_path / "jpg", 6, suffix=".jpg")
    sampled = load_frame_folder(folder, FramePolicy(num_frames=6), source_fps=3.0)
    assert [synthetic_media.read_frame_number(f) for f in sampled.frames] == list(range(6))


def test_frame_folder_errors(tmp_path, frame_folder):
    with pytest.raises(VideoNotFoundError, match="no_such_folder"):
        load_frame_folder(tmp_path / "no_such_folder", source_fps=3.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoEmptyError, match="empty"):
        load_frame_folder(tmp_path / "empty", source_fps=3.0)
    with pytest.raises(VideoUnreadableError, match="00001.png"):
        load_frame_folder(frame_folder / "00001.png", source_fps=3.0)


def test_frame_folder_with_a_broken_image(tmp_path):
    folder = synthetic_media.write_frame_folder(tmp_path / "broken", 4)
    (folder / "00003.png").write_bytes(b"not a png")
    with pytest.raises(VideoUnreadableError, match="00003.png"):
        load_frame_folder(folder, FramePolicy(num_frames=4), source_fps=3.0)


def test_frame_folder_with_mixed_sizes(tmp_path):
    folder = synthetic_media.write_frame_folder(tmp_path / "mixed", 3)
    Image.new("RGB", (32, 32)).save(folder / "00004.png")
    with pytest.raises(VideoUnreadableError, match="differ in size"):
        load_frame_folder(folder, FramePolicy(num_frames=4), source_fps=3.0)


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_synthetic_video_is_deterministic(tmp_path, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this PyAV build")
    first = synthetic_media.write_video(tmp_path / "a.mp4", seconds=1, codec=codec, seed=3)
    second = synthetic_media.write_video(tmp_path / "b.mp4", seconds=1, codec=codec, seed=3)
    other = synthetic_media.write_video(tmp_path / "c.mp4", seconds=1, codec=codec, seed=4)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_synthetic_images_are_deterministic_and_numbered(tmp_path):
    first = synthetic_media.write_image(tmp_path / "a.png", index=41)
    second = synthetic_media.write_image(tmp_path / "b.png", index=41)
    assert first.read_bytes() == second.read_bytes()
    for index in (0, 1, 41, 1000, 2**16 - 1):
        frame = synthetic_media.render_frame(index, 854, 480, seed=5)
        assert synthetic_media.read_frame_number(frame) == index
    consecutive = [synthetic_media.render_frame(i, *TINY_SIZE) for i in range(30)]
    assert len({frame.tobytes() for frame in consecutive}) == 30

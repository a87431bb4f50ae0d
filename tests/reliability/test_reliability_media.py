"""Bad media through the whole pipeline: the demo model on a Video-R1 format data root whose
items name a zero-byte file, truncated and corrupted videos, text and audio under video
names, valid videos under the wrong extension, a variable frame rate clip, an 8K frame, an
extreme aspect ratio, a stream without frames, a folder, a named pipe and a decompression bomb.

Every bad item gets an error sample naming its file and the run completes (exit 0); every
valid one is generated from frames identical to a plain sequential decode. Decoding has a time
budget: a long video past it is a clear per-item error, never a hang.

The sampler's own error types are proved file by file in tests/media/test_video.py; this file proves
that the pipeline turns each into one item's error and goes on.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from p2r_eval.cli.main import main
from p2r_eval.eval.runstore import RunStore
from p2r_eval.media.synthetic_media import (
    default_video_codec,
    write_audio_only,
    write_corrupted_copy,
    write_empty_video,
    write_text_file,
    write_truncated_copy,
    write_vfr_video,
    write_video,
)
from p2r_eval.media.video import FramePolicy, VideoTimeoutError, sample_frames

pytestmark = pytest.mark.slow

FOLDER = "Evaluation/MVBench/bad"
DEMO_ARGS = ["--model", "demo", "--tasks", "mvbench", "--frames", "4", "--max-new-tokens", "4",
             "--quiet"]


def write_plain_video(path: Path, width: int, height: int, frames: int) -> Path:
    """Flat frames (cheap to encode at any size) with a bar whose width marks the frame."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(default_video_codec(), rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            image = np.zeros((height, width, 3), np.uint8)
            image[:, : (index + 1) * width // (frames + 1)] = 200
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")))
        container.mux(stream.encode(None))
    return path


def sequential_frames(path: Path, indices: tuple[int, ...]) -> np.ndarray:
    with av.open(str(path)) as container:
        every = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return np.stack([every[i] for i in indices])


@pytest.fixture(scope="module")
def bad_media_root(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The data root, and per item id: its file name and whether it must decode."""
    root = tmp_path_factory.mktemp("bad-media")
    folder = root / FOLDER
    folder.mkdir(parents=True)
    whole = write_video(root / "whole.mp4", seconds=2, faststart=True)
    plain = write_video(root / "plain.mp4", seconds=2)
    mkv = write_video(root / "whole.mkv", seconds=1)
    files = {
        "zero_byte.mp4": lambda p: p.write_bytes(b""),
        "cut_short.mp4": lambda p: write_truncated_copy(whole, p, keep=0.6),
        "cut_no_index.mp4": lambda p: write_truncated_copy(plain, p, keep=0.5),
        "not_a_video.mp4": write_text_file,
        "garbled_mid_stream.mp4": lambda p: write_corrupted_copy(plain, p, start=0.1,
                                                                  length=0.7),
        # Noise between the frames 4-frame sampling decodes: the wanted frames are intact.
        "garbled_between_samples.mp4": lambda p: write_corrupted_copy(whole, p),
        "speech_only.mp4": write_audio_only,
        "no_frames.avi": write_empty_video,
        "mp4_named.avi": lambda p: p.write_bytes(whole.read_bytes()),
        "matroska_named.mp4": lambda p: p.write_bytes(mkv.read_bytes()),
        "variable_rate.mp4": lambda p: write_vfr_video(
            p, timestamps=[0.0, 0.05, 0.4, 0.45, 1.3, 1.31, 2.0, 2.9]),
        "eight_k.mp4": lambda p: write_plain_video(p, 7680, 4320, 2),
        "sliver.mp4": lambda p: write_plain_video(p, 4000, 16, 3),
        "ok.mp4": lambda p: write_video(p, seconds=1, fps=8),
        "a_folder.mp4": lambda p: p.mkdir(),
        "pipe.mp4": lambda p: os.mkfifo(p),
        "pipe.png": lambda p: os.mkfifo(p),
        "bomb.png": lambda p: Image.new("L", (20000, 10000)).save(p),
        "missing.mp4": lambda p: None,
    }
    for name, make in files.items():
        make(folder / name)
    decodes = {"mp4_named.avi", "matroska_named.mp4", "variable_rate.mp4", "eight_k.mp4",
               "ok.mp4", "garbled_between_samples.mp4"}
    records = []
    for index, name in enumerate(files, start=1):
        kind = "image" if name.endswith(".png") else "video"
        records.append({"problem_id": index, "problem": "What moves?", "data_type": kind,
                        "problem_type": "multiple choice", "options": ["A. a bar", "B. nothing"],
                        "solution": "<answer>A</answer>", "path": f"./{FOLDER}/{name}"})
    (root / "eval_mvbench.json").write_text(json.dumps(records))
    names = {str(index): name for index, name in enumerate(files, start=1)}
    return {"root": root, "names": names, "decodes": decodes, "original": whole}


@pytest.fixture(autouse=True)
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2R_HUB", "0")


def run_in_thread(function, timeout_s: float):
    """``function()``'s result (or its exception); fails, instead of hanging the suite, past
    ``timeout_s``."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = function()
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), f"still running after {timeout_s} s: a hang"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.mark.parametrize("workers", [0, 2])
def test_every_bad_file_is_one_items_clear_error_and_the_run_goes_on(
    bad_media_root, tmp_path, workers
):
    output = tmp_path / "run"
    code = run_in_thread(lambda: main([*DEMO_ARGS, "--data-root", str(bad_media_root["root"]),
                                       "--decode-workers", str(workers),
                                       "--output", str(output)]), timeout_s=300)
    assert code == 0
    samples = RunStore(output).load_samples("mvbench")
    names, decodes = bad_media_root["names"], bad_media_root["decodes"]
    assert set(samples) == set(names)
    for item_id, name in names.items():
        sample = samples[item_id]
        if name in decodes:
            assert sample.error is None and isinstance(sample.output, str), name
        else:
            assert sample.output is None and sample.error, name
            assert sample.error.startswith(f"mvbench/{item_id}: ")
            if name == "sliver.mp4":  # decodes; the model's processor refuses 4000x16
                assert "aspect ratio" in sample.error
            else:
                assert name in sample.error, sample.error
    results = json.loads((output / "results.json").read_text())
    assert results["tasks"]["mvbench"]["n_errors"] == len(names) - len(decodes)


@pytest.mark.parametrize("name", ["mp4_named.avi", "matroska_named.mp4", "variable_rate.mp4",
                                  "eight_k.mp4", "garbled_between_samples.mp4"])
def test_valid_files_under_odd_names_rates_and_sizes_give_the_right_frames(bad_media_root, name):
    path = bad_media_root["root"] / FOLDER / name
    frames = 2 if name == "eight_k.mp4" else 4  # 100 MB per 8K frame: keep it to the two
    sampled = sample_frames(path, policy=FramePolicy(num_frames=frames))
    source = bad_media_root["original"] if name.startswith("garbled") else path
    np.testing.assert_array_equal(sampled.frames, sequential_frames(source, sampled.indices))
    if name == "eight_k.mp4":
        assert sampled.frames.shape == (2, 4320, 7680, 3)


def test_decoding_a_long_video_past_its_time_budget_is_an_error_not_a_hang(tmp_path):
    long_video = write_video(tmp_path / "long.mp4", seconds=40, fps=30, gop=300)
    policy = FramePolicy(num_frames=64, decoder="pyav-sequential")  # decodes all 1,200 frames
    with pytest.raises(VideoTimeoutError, match="long.mp4: time budget exceeded"):
        run_in_thread(lambda: sample_frames(long_video, policy=policy, timeout_s=1e-3),
                      timeout_s=60)


def test_the_pipeline_decodes_under_a_time_budget(bad_media_root, tmp_path):
    """p2r-eval decodes each video under ``--decode-timeout`` (600 s by default); a decode past
    the budget is that item's error. A tiny budget makes every video fail: exit 1, each error
    naming the file and the budget."""
    output = tmp_path / "run"
    code = main([*DEMO_ARGS, "--data-root", str(bad_media_root["root"]),
                 "--decode-timeout", "1e-9", "--output", str(output)])
    samples = RunStore(output).load_samples("mvbench")
    decodes = [i for i, n in bad_media_root["names"].items() if n in bad_media_root["decodes"]]
    for item_id in decodes:
        assert "time budget exceeded" in samples[item_id].error, samples[item_id]
    assert code == 1  # every item failed

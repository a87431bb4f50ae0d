"""Input policies against the reference pipelines' own code.

The oracle is qwen-vl-utils from PyPI (reading videos with decord, as Video-R1's evaluation
does), configured as each reference's evaluation configures its vendored copy, then the same
Qwen2.5-VL processor. p2r's inputs (hf backend, after its sampler and decode-time resize) must
equal the reference's: every integer tensor equal, ``pixel_values_videos`` and
``second_per_grid_ts`` bit for bit.

Video-R1 handed its per-video rate to the processor as ``fps`` (the transformers of its time
turned that into ``second_per_grid_ts = 2 / fps``); the transformers installed here takes the
rate from the video metadata instead, which qwen-vl-utils returns on request: the same value.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import types
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fake_vllm import FakeLLM, FakeSamplingParams

from p2r_eval.cli.main import build_eval_parser
from p2r_eval.cli.settings import input_policy_from_args
from p2r_eval.core.request import Request
from p2r_eval.media import synthetic_media
from p2r_eval.media.input_policies import NAMED_POLICIES, TOKEN_PIXELS, named_frame_policy
from p2r_eval.media.saved_inputs import load_model_inputs
from p2r_eval.media.video import FramePolicy, VideoEmptyError, sample_frames
from p2r_eval.models import load_backend
from p2r_eval.models.base import DecodingSettings
from p2r_eval.models.hf import HFBackend

pytest.importorskip("decord")

PROMPT = "What happens in the video?"
TESTS = Path(__file__).resolve().parents[1]
LMMS_PYTHON = TESTS.parent / ".venv-lmms" / "bin" / "python"
# What each reference's evaluation sets in its vendored qwen_vl_utils/vision_process.py
# (Video-R1: README "Inference & Evaluation"; VideoRFT: the comments next to each constant).
REFERENCE_SETTINGS = {
    "video-r1": {"VIDEO_MIN_TOKEN_NUM": 128, "VIDEO_MAX_TOKEN_NUM": 256, "FPS": 2.0,
                 "FPS_MIN_FRAMES": 4, "FPS_MAX_FRAMES": 32},
    "videorft": {"VIDEO_MIN_TOKEN_NUM": 256, "VIDEO_MAX_TOKEN_NUM": 256, "FPS": 2.0,
                 "FPS_MIN_FRAMES": 32, "FPS_MAX_FRAMES": 32},
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real encoded videos covering the cases that change frame counts or sizes."""
    folder = tmp_path_factory.mktemp("policy-videos")
    write = synthetic_media.write_video
    gaps = np.random.default_rng(3).uniform(0.02, 0.15, size=90)
    return {
        "15s": write(folder / "15s.mp4", seconds=15, fps=30, width=640, height=360, gop=30),
        "2min": write(folder / "2min.mp4", seconds=120, fps=30, width=192, height=108, gop=250),
        "29.97fps": write(folder / "2997.mp4", seconds=9, fps=Fraction(30000, 1001),
                          width=256, height=144),
        "25fps": write(folder / "25fps.mp4", seconds=11, fps=25, width=400, height=224),
        "portrait": write(folder / "portrait.mp4", seconds=4, fps=30, width=180, height=320),
        "320x240": write(folder / "320x240.mp4", seconds=7.4, fps=30, width=320, height=240),
        "20 frames": write(folder / "20frames.mp4", seconds=20 / 30, fps=30, width=96,
                           height=64),
        "bframes": write(folder / "bframes.mp4", seconds=6, fps=30, width=160, height=120,
                         gop=15, b_frames=3, preset="medium"),
        "vfr": synthetic_media.write_vfr_video(
            folder / "vfr.mp4", timestamps=[float(t) for t in np.cumsum(gaps) - gaps[0]],
            width=128, height=96),
    }


@pytest.fixture(scope="module")
def backends(model_dir: Path) -> dict[str, HFBackend]:
    """The demo Qwen2.5-VL's hf backend as p2r-eval configures it for each named policy (the
    processor as the checkpoint ships it, as the references use it)."""
    return {
        name: HFBackend(model_dir, decoding=DecodingSettings(max_new_tokens=1),
                        max_pixels=policy.frame_policy.processor_max_pixels)
        for name, policy in NAMED_POLICIES.items()
    }


def reference_vision_process() -> types.ModuleType:
    """qwen-vl-utils' vision_process, imported on first use (it imports torchvision: collecting
    the tests does not pay for it); a test is skipped without it."""
    return pytest.importorskip("qwen_vl_utils.vision_process")


def configure_reference(monkeypatch: pytest.MonkeyPatch, settings: dict[str, Any]) -> None:
    vision_process = reference_vision_process()
    monkeypatch.setattr(vision_process, "FORCE_QWENVL_VIDEO_READER", "decord")
    vision_process.get_video_reader_backend.cache_clear()
    for name, value in settings.items():
        monkeypatch.setattr(vision_process, name, value)


def reference_inputs(processor: Any, video: Path, ele: dict[str, Any] | None = None) -> Any:
    """qwen-vl-utils' frames for ``video`` through the processor, as a reference feeds them."""
    messages = [{"role": "user", "content": [
        {"type": "video", "video": str(video), **(ele or {})},
        {"type": "text", "text": PROMPT},
    ]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    _, videos, video_kwargs = reference_vision_process().process_vision_info(
        messages, return_video_kwargs=True, return_video_metadata=True)
    frames, metadata = zip(*videos, strict=True)
    return processor(text=[text], videos=list(frames), video_metadata=list(metadata),
                     padding=True, return_tensors="pt", **video_kwargs)


def p2r_inputs(backend: HFBackend, video: Path, policy: FramePolicy) -> Any:
    sampled = sample_frames(video, policy=policy)
    request = Request("policy", video.stem, PROMPT, frames=sampled.frames, fps=sampled.sample_fps)
    return backend.processor_outputs([request])


def assert_same_inputs(ours: Any, reference: Any) -> None:
    assert sorted(ours.keys()) == sorted(reference.keys())
    for name in reference.keys():
        mine, theirs = torch.as_tensor(ours[name]), torch.as_tensor(reference[name])
        assert mine.shape == theirs.shape, name
        assert mine.dtype == theirs.dtype, name
        if name == "pixel_values_videos":
            assert float((mine - theirs).abs().max()) == 0.0
        else:
            assert torch.equal(mine, theirs), name


@pytest.mark.parametrize("policy", ["video-r1", "videorft"])
@pytest.mark.parametrize("clip", ["15s", "2min", "29.97fps", "25fps", "portrait", "320x240",
                                  "20 frames", "bframes", "vfr"])
@pytest.mark.slow
def test_inputs_equal_the_references_qwen_vl_utils(
    policy: str, clip: str, videos: dict[str, Path], backends: dict[str, HFBackend],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure_reference(monkeypatch, REFERENCE_SETTINGS[policy])
    backend = backends[policy]
    reference = reference_inputs(backend.processor, videos[clip])
    assert_same_inputs(p2r_inputs(backend, videos[clip], named_frame_policy(policy)), reference)


@pytest.mark.skipif(not LMMS_PYTHON.is_file(),
                    reason=".venv-lmms not set up (bash scripts/setup_lmms_env.sh)")
@pytest.mark.slow
def test_lmms_eval_policy_equals_lmms_evals_own_qwen2_5_vl(
    videos: dict[str, Path], backends: dict[str, HFBackend], model_dir: Path, tmp_path: Path
) -> None:
    """lmms-eval 0.7.3's ``qwen2_5_vl`` class itself, run in its own environment."""
    clips = ["15s", "20 frames", "portrait", "vfr", "29.97fps"]
    command = [str(LMMS_PYTHON), str(TESTS / "lmms_qwen_inputs.py"), str(model_dir),
               str(tmp_path), PROMPT, *(str(videos[clip]) for clip in clips)]
    process = subprocess.run(command, capture_output=True, text=True, timeout=900,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert process.returncode == 0, process.stderr[-3000:]
    policy = named_frame_policy("lmms-eval")
    for clip in clips:
        reference = load_model_inputs(tmp_path / "oracle" / f"{videos[clip].stem}.safetensors")
        assert_same_inputs(p2r_inputs(backends["lmms-eval"], videos[clip], policy), reference)


@pytest.mark.parametrize("policy", list(NAMED_POLICIES))
@pytest.mark.slow
def test_vllm_prompt_agrees_with_the_hf_path(
    policy: str, videos: dict[str, Path], backends: dict[str, HFBackend], model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Up to the vLLM call (a stand-in vllm module records it): the same prompt text, the same
    resized frames with the hf path's metadata and rate, and no pixel cap for vLLM's processor
    (the checkpoint's bounds, as on the hf path). Those, put through the checkpoint's processor
    as vLLM hands them over (its own ``do_sample_frames`` marker aside), give the hf path's
    tensors."""
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(
        LLM=FakeLLM, SamplingParams=FakeSamplingParams, __version__="0.0.fake"))
    frame_policy = named_frame_policy(policy)
    backend = load_backend(str(model_dir), decoding=DecodingSettings(max_new_tokens=1),
                           backend="vllm", max_pixels=frame_policy.processor_max_pixels)
    sampled = sample_frames(videos["320x240"], policy=frame_policy)
    request = Request("policy", "320x240", PROMPT, frames=sampled.frames, fps=sampled.sample_fps)
    backend.generate([request])
    (prompts, _), = backend.llm.calls
    (prompt,) = prompts
    (frames, metadata), = prompt["multi_modal_data"]["video"]
    assert frames is request.frames and "mm_processor_kwargs" not in backend.engine_settings
    metadata = {key: value for key, value in metadata.items() if key != "do_sample_frames"}
    handed_over = backend.processor(text=[prompt["prompt"]], videos=[frames],
                                    video_metadata=[metadata], return_tensors="pt",
                                    **prompt["mm_processor_kwargs"])
    assert_same_inputs(handed_over, backends[policy].processor_outputs([request]))


@pytest.mark.parametrize(("clip", "frames", "size"), [
    ("15s", 30, (336, 588)),         # 640x360 shrunk to at most 256*28*28 pixels
    ("320x240", 14, (280, 392)),     # 7.4 s: 2 fps floored to even; 128*28*28 pixels at least
    ("20 frames", 4, (280, 392)),    # at least 4 frames
    ("2min", 32, (252, 448)),        # at most 32
])
def test_video_r1_frame_counts_and_sizes(
    clip: str, frames: int, size: tuple[int, int], videos: dict[str, Path]
) -> None:
    sampled = sample_frames(videos[clip], policy=named_frame_policy("video-r1"))
    assert sampled.frames.shape == (frames, *size, 3)


@pytest.mark.parametrize("clip", ["2min", "bframes", "vfr"])
@pytest.mark.slow
def test_keyframe_sampling_with_resize_equals_sequential_decoding(
    clip: str, videos: dict[str, Path]
) -> None:
    policy = named_frame_policy("video-r1")
    sampled = sample_frames(videos[clip], policy=policy)
    sequential = sample_frames(videos[clip], policy=replace(policy, decoder="pyav-sequential"))
    assert sampled.indices == sequential.indices
    assert np.array_equal(sampled.frames, sequential.frames)


def test_videorft_takes_32_frames_or_all_even(videos: dict[str, Path]) -> None:
    policy = named_frame_policy("videorft")
    assert len(sample_frames(videos["15s"], policy=policy).frames) == 32
    assert len(sample_frames(videos["20 frames"], policy=policy).frames) == 20
    height, width = sample_frames(videos["320x240"], policy=policy).frames.shape[1:3]
    assert 256 * TOKEN_PIXELS <= height * width <= 1.05 * 256 * TOKEN_PIXELS


def test_a_one_frame_video_is_refused_by_name(tmp_path: Path) -> None:
    video = synthetic_media.write_video(tmp_path / "one.mp4", seconds=1 / 30, fps=30)
    with pytest.raises(VideoEmptyError, match="one.mp4.*at least 2 frames"):
        sample_frames(video, policy=named_frame_policy("video-r1"))


def eval_args(*options: str) -> argparse.Namespace:
    return build_eval_parser().parse_args(["--model", "demo", *options])


def test_the_protocol_chooses_the_default_policy() -> None:
    assert input_policy_from_args(eval_args()) == named_frame_policy("video-r1")
    official = input_policy_from_args(eval_args("--protocol", "official"))
    assert (official.input_policy, official.num_frames, official.resize) == (
        "uniform", 32, "processor")


def test_frame_options_select_the_uniform_policy() -> None:
    policy = input_policy_from_args(eval_args("--frames", "8", "--max-pixels", "3136"))
    assert (policy.input_policy, policy.num_frames, policy.max_pixels) == ("uniform", 8, 3136)
    assert policy == FramePolicy(num_frames=8, max_pixels=3136)


def test_frame_options_with_a_named_policy_are_refused() -> None:
    with pytest.raises(ValueError, match="--frames, --max-pixels set the uniform input policy"):
        input_policy_from_args(eval_args("--input-policy", "lmms-eval", "--frames", "8",
                                         "--max-pixels", "3136"))
